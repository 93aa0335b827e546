"""The LocalHub test server, driven only by the real huggingface_hub and transformers clients."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import BertConfig, BertModel

from hf_relrep.testing import HubEnvironment, LocalHub, use_local_hub
from hf_relrep.testing.served import HubServer, ServedHub


REPO = "test-user/demo"


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _tree(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fixture_serves_hf_endpoint(local_hub: LocalHub, local_hub_environment: HubEnvironment) -> None:
    assert local_hub.endpoint == local_hub_environment.endpoint == os.environ["HF_ENDPOINT"]
    assert HfApi().endpoint == local_hub.endpoint
    assert os.environ["HF_HUB_DISABLE_XET"] == "1"
    assert Path(os.environ["HF_HOME"]).resolve() != (Path.home() / ".cache" / "huggingface").resolve()


def test_the_hub_and_its_server_are_what_the_handlers_are_written_against(tmp_path: Path) -> None:
    with LocalHub(tmp_path / "hub") as hub:
        assert isinstance(hub, ServedHub)
        assert isinstance(hub._httpd, HubServer) and hub._httpd.hub is hub


def test_upload_folder_snapshot_round_trip(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    url = api.create_repo(REPO)
    assert url.repo_id == REPO and url.startswith(local_hub.endpoint)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo(REPO)
    assert error.value.response.status_code == 409
    api.create_repo(REPO, exist_ok=True)

    files = {"config.json": b'{"a": 1}', "nested/deeper/notes.md": "héllo\n".encode(), "empty.txt": b""}
    commit = api.upload_folder(folder_path=_write(tmp_path / "src", files), repo_id=REPO, commit_message="add")
    info = api.model_info(REPO)
    assert info.sha == commit.oid
    assert {s.rfilename for s in info.siblings} == {".gitattributes", *files}

    snapshot = snapshot_download(REPO, cache_dir=tmp_path / "cache")
    downloaded = _tree(snapshot)
    assert downloaded.pop(".gitattributes").startswith(b"*.7z filter=lfs")
    assert downloaded == files
    assert [c.title for c in api.list_repo_commits(REPO)] == ["add", "initial commit"]

    api.delete_file("empty.txt", repo_id=REPO)
    api.delete_folder("nested", repo_id=REPO)
    assert api.list_repo_files(REPO) == [".gitattributes", "config.json"]
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)


def test_lfs_round_trip(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo(REPO)
    api.upload_file(
        path_or_fileobj=b"*.dat filter=lfs diff=lfs merge=lfs -text\n", path_in_repo=".gitattributes", repo_id=REPO
    )
    big = b"0123456789abcdef\n" * 650_000  # 11 MB of text: LFS by size
    small = b"tracked by .gitattributes\n"  # 26 bytes: LFS by pattern
    files = {"big.txt": big, "weights/small.dat": small}
    api.upload_folder(folder_path=_write(tmp_path / "src", files), repo_id=REPO)

    uploads = [r for r in local_hub.requests if r.method == "PUT" and r.path.startswith("/_lfs/upload/")]
    assert len(uploads) == 2
    siblings = {s.rfilename: s for s in api.model_info(REPO).siblings}
    for name, data in files.items():
        assert siblings[name].lfs is not None and siblings[name].lfs.sha256 == hashlib.sha256(data).hexdigest()
        metadata = get_hf_file_metadata(hf_hub_url(REPO, name))
        assert metadata.etag == hashlib.sha256(data).hexdigest() and metadata.size == len(data)
        assert Path(hf_hub_download(REPO, name, cache_dir=tmp_path / "cache")).read_bytes() == data

    # Same content again: the preupload oid matches, nothing is uploaded, no empty commit is made.
    before = api.model_info(REPO).sha
    api.upload_folder(folder_path=tmp_path / "src", repo_id=REPO)
    assert api.model_info(REPO).sha == before
    assert len([r for r in local_hub.requests if r.method == "PUT"]) == 2


def test_push_to_hub_from_pretrained_identical_outputs(local_hub: LocalHub) -> None:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    model = BertModel(config).eval()
    model.push_to_hub("test-user/tiny-bert")

    loaded = BertModel.from_pretrained("test-user/tiny-bert").eval()
    input_ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids).last_hidden_state, model(input_ids).last_hidden_state)
    assert {"config.json", "model.safetensors"} <= set(HfApi().list_repo_files("test-user/tiny-bert"))


def test_older_revision_by_sha_tag_and_branch(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo(REPO)
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="value.txt", repo_id=REPO).oid
    api.create_tag(REPO, tag="v1", revision=first)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_tag(REPO, tag="v1")
    assert error.value.response.status_code == 409
    api.create_branch(REPO, branch="stable", revision=first)
    second = api.upload_file(path_or_fileobj=b"v2", path_in_repo="value.txt", repo_id=REPO).oid
    assert second != first

    def read(revision: str) -> bytes:
        return Path(hf_hub_download(REPO, "value.txt", revision=revision, cache_dir=tmp_path)).read_bytes()

    assert read(first) == read("v1") == read("stable") == b"v1"
    assert read("main") == read(second) == b"v2"
    assert api.model_info(REPO, revision="v1").sha == first
    assert (
        Path(snapshot_download(REPO, revision=first, cache_dir=tmp_path / "snap"), "value.txt").read_bytes() == b"v1"
    )
    refs = api.list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second, "stable": first}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": first}
    with pytest.raises(RevisionNotFoundError):
        read("no-such-branch")


def test_private_repo_needs_the_token(local_hub: LocalHub, tmp_path: Path) -> None:
    local_hub.token = "secret"
    owner = HfApi(token="secret")
    owner.create_repo(REPO, private=True)
    owner.upload_file(path_or_fileobj=b"hidden", path_in_repo="secret.txt", repo_id=REPO)
    owner.create_repo("test-user/public")
    owner.upload_file(path_or_fileobj=b"open", path_in_repo="open.txt", repo_id="test-user/public")
    assert owner.model_info(REPO).private is True
    assert owner.whoami()["name"] == "test-user"

    with pytest.raises(RepositoryNotFoundError):  # private repos are invisible without the token
        hf_hub_download(REPO, "secret.txt", token=False, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(REPO)
    # Public repos stay readable anonymously; writing needs the token.
    assert (
        Path(hf_hub_download("test-user/public", "open.txt", token=False, cache_dir=tmp_path)).read_bytes() == b"open"
    )
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(token=False).create_repo("test-user/other")
    assert error.value.response.status_code == 401

    with pytest.raises(HfHubHTTPError) as error:  # a wrong token is an authentication error, not a missing repo
        hf_hub_download(REPO, "secret.txt", token="wrong", cache_dir=tmp_path)
    assert not isinstance(error.value, RepositoryNotFoundError)
    assert error.value.response.status_code == 401 and "Invalid credentials" in str(error.value)
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):  # whoami words it its own way
        HfApi(token="wrong").whoami()

    path = hf_hub_download(REPO, "secret.txt", token="secret", cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"hidden"

    local_hub.anonymous_read = False  # now every request needs the token
    with pytest.raises(HfHubHTTPError) as error:
        hf_hub_download("test-user/public", "open.txt", token=False, cache_dir=tmp_path / "closed")
    assert error.value.response.status_code == 401


@pytest.mark.parametrize("stop_server", [True, False], ids=["server-killed", "connection-dropped"])
def test_interrupted_push_leaves_main_at_last_complete_commit(
    local_hub: LocalHub, tmp_path: Path, stop_server: bool
) -> None:
    api = HfApi()
    api.create_repo(REPO)
    old = {"a.txt": b"a1", "b.txt": b"b1"}
    complete = api.upload_folder(folder_path=_write(tmp_path / "v1", old), repo_id=REPO).oid

    new = {"a.txt": b"a2", "b.txt": b"b2", "c.txt": b"c2", "d.bin": b"\0lfs"}
    local_hub.faults.fail_next_commit(after_files=2, stop_server=stop_server)
    with pytest.raises(httpx2.RemoteProtocolError):  # the commit POST is not retried by huggingface_hub
        api.upload_folder(folder_path=_write(tmp_path / "v2", new), repo_id=REPO)

    if stop_server:
        with pytest.raises(httpx2.ConnectError):  # the server is gone
            api.model_info(REPO)
        local_hub.start()  # same port, same storage: what a restarted server would find on disk
    assert api.model_info(REPO).sha == complete
    downloaded = _tree(snapshot_download(REPO, cache_dir=tmp_path / "cache"))
    downloaded.pop(".gitattributes")
    assert downloaded == old
    # Part of the new commit reached the blob store, none of it is visible.
    stored = hashlib.sha256(b"a2").hexdigest()
    assert (local_hub.root / "blobs" / stored[:2] / stored).is_file()
    assert [c.commit_id for c in api.list_repo_commits(REPO)][0] == complete

    # The next push goes through.
    assert api.upload_folder(folder_path=tmp_path / "v2", repo_id=REPO).oid != complete
    assert Path(hf_hub_download(REPO, "c.txt", cache_dir=tmp_path / "cache")).read_bytes() == b"c2"


def test_bad_downloads_what_the_client_detects(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo(REPO)
    data = bytes(range(256)) * 64  # 16 KiB, binary: stored through LFS
    text = b"regular text file\n" * 100
    api.upload_file(path_or_fileobj=data, path_in_repo="weights.bin", repo_id=REPO)
    api.upload_file(path_or_fileobj=text, path_in_repo="notes.txt", repo_id=REPO)

    # A body shorter than the size announced by HEAD: detected, nothing is left in the cache.
    for name, content in (("weights.bin", data), ("notes.txt", text)):
        local_hub.faults.fail_next_download(name, kind="truncate")
        with pytest.raises(OSError, match="Consistency check failed"):
            hf_hub_download(REPO, name, cache_dir=tmp_path / "truncated")
        assert Path(hf_hub_download(REPO, name, cache_dir=tmp_path / "truncated")).read_bytes() == content

    # A cut connection: the client resumes with a Range request and gets the right bytes.
    local_hub.faults.fail_next_download("weights.bin", kind="disconnect")
    assert Path(hf_hub_download(REPO, "weights.bin", cache_dir=tmp_path / "cut")).read_bytes() == data
    assert sum(r.method == "GET" and r.path.endswith("/weights.bin") for r in local_hub.requests) == 4

    # Right size, wrong bytes: NOT detected by the client, for regular and LFS files alike.
    local_hub.faults.fail_next_download("notes.txt", kind="corrupt")
    corrupted = Path(hf_hub_download(REPO, "notes.txt", cache_dir=tmp_path / "corrupt")).read_bytes()
    assert len(corrupted) == len(text) and corrupted != text
    local_hub.faults.fail_next_download("weights.bin", kind="corrupt")
    path = hf_hub_download(REPO, "weights.bin", cache_dir=tmp_path / "corrupt")
    # For an LFS file the ETag is the sha256 of the content: a caller can check it.
    etag = get_hf_file_metadata(hf_hub_url(REPO, "weights.bin")).etag
    assert etag == hashlib.sha256(data).hexdigest() != hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert local_hub.faults.pending == 0


def test_missing_repo_revision_and_file(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/nope", "config.json", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/nope")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("test-user/nope", cache_dir=tmp_path)
    api.create_repo(REPO)
    with pytest.raises(EntryNotFoundError) as error:
        hf_hub_download(REPO, "missing.json", cache_dir=tmp_path)
    assert isinstance(error.value, RemoteEntryNotFoundError)
    assert not api.file_exists(REPO, "missing.json")
    assert api.file_exists(REPO, ".gitattributes")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="0" * 40)
    with pytest.raises(HfHubHTTPError, match="pull requests"):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO, create_pr=True)


def test_dataset_repos_and_load_dataset(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    url = api.create_repo(REPO, repo_type="dataset")
    assert url == f"{local_hub.endpoint}/datasets/{REPO}"
    csv = b"text,label\ngood,1\nbad,0\n"
    api.upload_file(path_or_fileobj=csv, path_in_repo="data/train.csv", repo_id=REPO, repo_type="dataset")
    assert not api.repo_exists(REPO)  # the model namespace is separate
    assert Path(hf_hub_download(REPO, "data/train.csv", repo_type="dataset", cache_dir=tmp_path)).read_bytes() == csv

    import datasets

    train = datasets.load_dataset(REPO, split="train", cache_dir=str(tmp_path / "datasets"))
    assert train.to_dict() == {"text": ["good", "bad"], "label": [1, 0]}


def test_stop_joins_threads_and_frees_the_port(tmp_path: Path) -> None:
    with LocalHub(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint)
        api.create_repo(REPO)
        port = hub.port
    assert not [t for t in threading.enumerate() if t.name.startswith(f"LocalHub:{port}")]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nobody listens
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # released: another server can take it

    with LocalHub(tmp_path / "hub", port=port) as hub:  # the storage outlives the server
        assert HfApi(endpoint=hub.endpoint).repo_exists(REPO)


_CLIENTS = ("huggingface_hub", "transformers", "datasets", "evaluate", "peft", "accelerate")


def _client_globals() -> dict[tuple[str, str], object]:
    """The plain values (strings, paths, flags, host sets) of every global of the loaded Hub client modules."""
    return {
        (name, attribute): value
        for name, module in list(sys.modules.items())
        if module is not None and name.split(".")[0] in _CLIENTS
        for attribute, value in list(vars(module).items())
        if isinstance(value, (str, Path, bool, frozenset))
    }


def test_importing_hf_relrep_testing_changes_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter: importing the package and each of its modules (the pytest plugin included) leaves
    os.environ and the globals of the Hub clients as they were (the user's endpoint, home and token stay)."""
    code = textwrap.dedent(
        """
        import importlib, json, os, pkgutil, sys

        at_start = dict(os.environ)
        import hf_relrep  # the library: it imports transformers and huggingface_hub

        environ = dict(os.environ)
        changed = {k for k in {*environ, *at_start} if environ.get(k) != at_start.get(k)}
        assert not changed, f"import hf_relrep changed {sorted(changed)}"
        clients = ("huggingface_hub", "transformers", "datasets", "evaluate", "peft", "accelerate")
        modules = {n: m for n, m in sys.modules.items() if m is not None and n.split(".")[0] in clients}
        before = {n: dict(vars(m)) for n, m in modules.items()}
        import hf_relrep.testing

        names = [f"hf_relrep.testing.{m.name}" for m in pkgutil.iter_modules(hf_relrep.testing.__path__)]
        for name in names:
            importlib.import_module(name)
        assert dict(os.environ) == environ, "importing hf_relrep.testing changed os.environ"
        changed = sorted(
            f"{n}.{a}" for n, m in modules.items() for a in {*before[n], *vars(m)}
            if a not in before[n] or a not in vars(m) or vars(m)[a] is not before[n][a]
        )
        assert not changed, f"importing hf_relrep.testing changed {changed}"
        import huggingface_hub.constants as constants

        print(json.dumps({"modules": names, "endpoint": constants.ENDPOINT, "home": constants.HF_HOME}))
        """
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT="https://hub.example.invalid", HF_HOME=str(tmp_path / "home"), HF_TOKEN="hf_user_token")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"hf_relrep.testing.plugin", "hf_relrep.testing.environment", "hf_relrep.testing.hub"} <= set(
        seen["modules"]
    )
    assert seen["endpoint"] == "https://hub.example.invalid" and seen["home"] == str(tmp_path / "home")


def test_use_local_hub_restores_the_environment_and_the_clients(local_hub_environment: HubEnvironment) -> None:
    environ, clients = dict(os.environ), _client_globals()
    with use_local_hub(token="secret") as hub:
        assert hub.endpoint == os.environ["HF_ENDPOINT"] == HfApi().endpoint != local_hub_environment.endpoint
        home = Path(os.environ["HF_HOME"])
        assert home != local_hub_environment.home and "HF_TOKEN" not in os.environ
        api = HfApi(token="secret")
        api.create_repo(REPO)
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=REPO)
        downloaded = Path(hf_hub_download(REPO, "a.txt", token="secret"))  # the default cache: under this HF_HOME
        assert downloaded.read_bytes() == b"hello" and home in downloaded.parents
    assert dict(os.environ) == environ
    after = _client_globals()
    assert {key: after.get(key) for key in clients} == clients
    assert HfApi().endpoint == local_hub_environment.endpoint
    assert not home.exists() and not hub.running
