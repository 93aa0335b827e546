"""A local Hugging Face Hub for tests: real ``huggingface_hub`` and ``transformers`` clients, no network.

:class:`LocalHub` is a standard-library HTTP server (``http.server``) bound to ``127.0.0.1`` that answers the part of
the Hub HTTP protocol used by ``create_repo``, ``upload_folder``/``create_commit``, ``push_to_hub``, ``model_info``,
``hf_hub_download``, ``snapshot_download`` and ``from_pretrained`` (huggingface_hub 2.4, transformers 5.x): repos
(models, datasets, spaces), branches, tags, commits, the preupload and Git LFS upload endpoints, and file downloads
with ``Range`` support. Storage is a folder on disk: blobs by sha256, one JSON snapshot per commit, refs swapped
atomically once everything of a commit is stored.

**Importing this module changes the environment of the process.** ``huggingface_hub`` reads ``HF_ENDPOINT`` once, at
import, and ``transformers`` caches its ``HfApi``; so on import this module (meant for test suites only):

- reserves a port on 127.0.0.1 and sets ``HF_ENDPOINT=http://127.0.0.1:PORT`` (no server runs until a
  :class:`LocalHub` is started on that port, so a stray request is refused instead of reaching huggingface.co);
- sets ``HF_HUB_DISABLE_XET=1`` (the plain HTTP server does not speak the Xet protocol), ``HF_HUB_DISABLE_TELEMETRY=1``
  and points ``HF_HOME``, ``HF_HUB_CACHE`` and the other caches at a temporary folder, removed at exit;
- removes ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN`` and the offline/staging switches from the environment, so that a
  real token is never sent to the local server and the user's ``~/.cache/huggingface`` is never touched;
- rewrites the module globals that ``huggingface_hub``, ``transformers`` and ``datasets`` computed from the
  environment at their import (``import hf_relrep`` imports ``transformers``, so they are always loaded first;
  nothing of theirs touches the disk or the network at import).

Child processes inherit the environment and reuse the parent's endpoint (they do not reserve another port).

In a test suite, in ``conftest.py``::

    from hf_relrep.testing import local_hub  # noqa: F401

and a test (the fixture is function-scoped: every test gets a fresh, empty hub on the reserved port, stopped with
all its threads at the end of the test; clients need no ``endpoint=``, ``HF_ENDPOINT`` already points at it)::

    from pathlib import Path

    from huggingface_hub import HfApi, hf_hub_download


    def test_round_trip(local_hub, tmp_path):
        api = HfApi()
        api.create_repo("test-user/tiny")
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="test-user/tiny")
        assert Path(hf_hub_download("test-user/tiny", "a.txt", cache_dir=tmp_path)).read_bytes() == b"hello"

Outside pytest, pass the endpoint to the client, or give it to another process through its environment
(``HF_ENDPOINT`` is read when ``huggingface_hub`` is imported; ``HF_HUB_DISABLE_XET=1`` keeps uploads on plain
HTTP)::

    import os
    import subprocess
    import sys

    from huggingface_hub import HfApi

    from hf_relrep.testing import LocalHub

    with LocalHub(token="secret") as hub:
        api = HfApi(endpoint=hub.endpoint, token="secret")
        api.create_repo("test-user/demo", private=True)
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="test-user/demo")
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "secret"}
        code = "import huggingface_hub as h; print(open(h.hf_hub_download('test-user/demo', 'a.txt')).read())"
        print(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)  # hello

Authentication: with ``token=None`` (default) every request is accepted and private repos are visible to everybody.
With ``token="..."``, a request carrying another bearer token gets 401 ``Invalid credentials in Authorization
header`` (``HfHubHTTPError``); writes without a token get 401; private repos answer 404 ``RepoNotFound``
(``RepositoryNotFoundError``) to anonymous requests; public repos stay readable anonymously unless
``anonymous_read=False``, which makes every request need the token.

Fault injection (``hub.faults``): :meth:`Faults.fail_next_commit` drops the connection in the middle of the next
commit (after storing some of its files, before the branch moves) and can stop the server as if it were killed;
:meth:`Faults.fail_next_download` serves corrupted, truncated or cut-off bytes for a file.

What the real client detects (huggingface_hub 2.4, plain HTTP download): the body size against the size announced by
the HEAD request (``OSError: Consistency check failed``), and a cut connection, which it resumes with a ``Range``
request. It does not hash what it downloads: a corrupted body of the right size is accepted silently, for regular
and LFS files alike (for LFS files the ETag is the sha256 of the content, so a caller can check it).

Limits: no pull requests (``create_pr=True`` is refused with a 400), no Xet, no gated repos, no pagination (one
page), atomicity against a killed process but not against power loss (no fsync), one server per storage folder.
"""

import atexit
import base64
import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit


try:  # pytest is a test dependency, not a runtime one: LocalHub works without it.
    import pytest
except ImportError:  # pragma: no cover
    pytest = None


__all__ = ["Faults", "LocalHub", "RequestRecord", "configure_hub_environment", "local_hub"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024
"""Files of this size or more go through Git LFS (the Hub refuses larger regular files)."""

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the client keys its error type on this text

# The .gitattributes the Hub puts in the initial commit of a new repo (abridged): files matching these go to LFS.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
        " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
        " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)


class RequestRecord(NamedTuple):
    """One request answered by a :class:`LocalHub` (``status`` is 0 when the connection was dropped)."""

    method: str
    path: str
    status: int


# --------------------------------------------------------------------------------------------------------------------
# Hashes and small helpers
# --------------------------------------------------------------------------------------------------------------------


def _git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: ``sha1(b"blob <len>\\0" + data)``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    """Content of the Git LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _is_true(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


def _valid_repo_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and "\\" not in path and "\0" not in path and all(p not in ("", ".", "..") for p in parts)


def _gitattributes_lfs(path: str, gitattributes: str) -> bool:
    """Whether ``path`` is marked ``filter=lfs`` by a ``.gitattributes`` text (last matching line wins)."""
    is_lfs = False
    for line in gitattributes.splitlines():
        tokens = line.strip().split()
        if not tokens or tokens[0].startswith("#"):
            continue
        pattern, attrs = tokens[0].lstrip("/"), tokens[1:]
        subject = path if "/" in pattern else path.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(subject, pattern.replace("**/", "*").replace("**", "*")):
            if "filter=lfs" in attrs:
                is_lfs = True
            elif "-filter" in attrs or "!filter" in attrs:
                is_lfs = False
    return is_lfs


def _gitignored(path: str, gitignore: str) -> bool:
    ignored = False
    for line in gitignore.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [path, path.rsplit("/", 1)[-1], *(path.split("/")[: i + 1][-1] for i in range(path.count("/")))]
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


class _HubError(Exception):
    """An HTTP error answer: status, message, and the ``X-Error-Code`` the client maps to a typed error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.detail = detail  # body text, when the header must keep a wording the client recognizes


class _DropConnection(Exception):
    """Close the client connection without any answer (fault injection)."""

    def __init__(self, stop_server: bool):
        super().__init__("connection dropped by fault injection")
        self.stop_server = stop_server


# --------------------------------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _CommitFault:
    after_files: int
    stop_server: bool
    repo_id: str | None


@dataclass
class _DownloadFault:
    path: str
    kind: str
    times: int
    repo_id: str | None


class Faults:
    """Failures a :class:`LocalHub` injects on purpose, each armed for the next matching request(s).

    Reached as ``hub.faults``; thread-safe. Faults survive :meth:`LocalHub.stop`/:meth:`LocalHub.start` and are
    consumed when they fire.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commits: list[_CommitFault] = []
        self._downloads: list[_DownloadFault] = []

    def fail_next_commit(self, *, after_files: int = 0, stop_server: bool = True, repo_id: str | None = None) -> None:
        """Break the next commit: store its first ``after_files`` files, then drop the connection unanswered.

        The branch is never moved, so the repo stays at its last complete commit; the client's commit call raises
        (``httpx2.RemoteProtocolError``: the commit POST is not retried by huggingface_hub). Files uploaded through
        LFS before the commit call are stored already, as on the real Hub, and stay invisible.

        Args:
            after_files: How many files of the commit (regular or LFS) are stored before the failure.
            stop_server: Also stop the server, as if its process were killed: later requests are refused until
                :meth:`LocalHub.start` is called again (same port, same storage).
            repo_id: Only for commits to this repo (``"namespace/name"``); any repo when ``None``.
        """
        if after_files < 0:
            raise ValueError(f"after_files must be >= 0, got {after_files}")
        with self._lock:
            self._commits.append(_CommitFault(after_files, stop_server, repo_id))

    def fail_next_download(
        self,
        path: str,
        *,
        kind: Literal["corrupt", "truncate", "disconnect"] = "corrupt",
        times: int = 1,
        repo_id: str | None = None,
    ) -> None:
        """Serve bad bytes for the next ``times`` downloads (GET, not HEAD) of the file ``path``.

        Args:
            path: Path of the file in the repo.
            kind: ``"corrupt"``: the right number of bytes, some of them inverted (the middle byte of the file and
                the 15 after it). ``"truncate"``: half of the body, with a ``Content-Length`` that says so.
                ``"disconnect"``: the full ``Content-Length`` is announced, half of the body is sent, then the
                connection is closed.
            times: Number of downloads affected (the client retries a cut connection up to 5 times).
            repo_id: Only for this repo (``"namespace/name"``); any repo when ``None``.
        """
        if kind not in ("corrupt", "truncate", "disconnect"):
            raise ValueError(f"kind must be 'corrupt', 'truncate' or 'disconnect', got {kind!r}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._downloads.append(_DownloadFault(path, kind, times, repo_id))

    def clear(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._commits.clear()
            self._downloads.clear()

    @property
    def pending(self) -> int:
        """Number of faults armed and not fired yet."""
        with self._lock:
            return len(self._commits) + len(self._downloads)

    def _take_commit(self, repo_id: str) -> _CommitFault | None:
        with self._lock:
            for fault in self._commits:
                if fault.repo_id in (None, repo_id):
                    self._commits.remove(fault)
                    return fault
        return None

    def _take_download(self, repo_id: str, path: str) -> str | None:
        with self._lock:
            for fault in self._downloads:
                if fault.path == path and fault.repo_id in (None, repo_id):
                    fault.times -= 1
                    if fault.times == 0:
                        self._downloads.remove(fault)
                    return fault.kind
        return None


# --------------------------------------------------------------------------------------------------------------------
# Storage: blobs by sha256, commits as JSON snapshots, refs swapped atomically
# --------------------------------------------------------------------------------------------------------------------


class _Repo:
    """One repo on disk: ``repo.json`` (settings), ``refs.json`` (branches, tags), ``commits/<sha>.json``."""

    def __init__(self, hub: "LocalHub", repo_type: str, namespace: str, name: str):
        self.hub = hub
        self.type = repo_type
        self.namespace = namespace
        self.name = name
        self.id = f"{namespace}/{name}"
        self.dir = hub.root / "repos" / f"{repo_type}s" / namespace / name

    @property
    def url_path(self) -> str:
        return f"{_URL_PREFIXES[self.type]}{self.id}"

    def exists(self) -> bool:
        return (self.dir / "refs.json").is_file()

    def meta(self) -> dict[str, Any]:
        return json.loads((self.dir / "repo.json").read_text())

    def set_meta(self, meta: dict[str, Any]) -> None:
        _atomic_write(self.dir / "repo.json", json.dumps(meta, indent=1).encode())

    def refs(self) -> dict[str, dict[str, str]]:
        return json.loads((self.dir / "refs.json").read_text())

    def set_refs(self, refs: dict[str, dict[str, str]]) -> None:
        _atomic_write(self.dir / "refs.json", json.dumps(refs, indent=1).encode())

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.dir / "commits" / f"{sha}.json").read_text())

    def resolve(self, revision: str) -> str:
        """Commit sha of a branch, a tag (also as ``refs/heads/...``/``refs/tags/...``) or a full commit sha."""
        refs = self.refs()
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if name in refs["branches"]:
            return refs["branches"][name]
        if name in refs["tags"]:
            return refs["tags"][name]
        if _SHA_RE.match(revision) and (self.dir / "commits" / f"{revision}.json").is_file():
            return revision
        raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def write_commit(
        self, tree: dict[str, dict[str, Any]], parents: list[str], title: str, message: str, author: str
    ) -> str:
        """Store a commit snapshot (not yet reachable from any ref) and return its sha."""
        body = {"parents": parents, "title": title, "message": message, "date": _now(), "authors": [author]}
        body["tree"] = tree
        # A nonce makes every commit id unique, even for identical content pushed twice in the same millisecond.
        canonical = json.dumps({**body, "nonce": uuid.uuid4().hex}, sort_keys=True).encode()
        sha = hashlib.sha1(canonical).hexdigest()
        _atomic_write(self.dir / "commits" / f"{sha}.json", json.dumps({"id": sha, **body}, indent=1).encode())
        return sha

    def history(self, sha: str) -> Iterator[dict[str, Any]]:
        """Commits reachable from ``sha``, newest first (first parent only)."""
        while sha:
            commit = self.commit(sha)
            yield commit
            sha = commit["parents"][0] if commit["parents"] else ""


class LocalHub:
    """A Hub-protocol HTTP server on 127.0.0.1, backed by a folder, for tests with the real Hub clients.

    Args:
        root: Storage folder (created if needed). ``None``: a temporary folder removed when the hub is closed or
            garbage collected. Restarting a hub on the same folder finds every repo and commit again.
        token: When set, the bearer token clients must send for writes, for private repos (and for everything with
            ``anonymous_read=False``); a wrong token always gets 401. Can be changed while the server runs.
        user: Name returned by ``whoami`` and namespace of repos created without one.
        port: Port to bind on 127.0.0.1; 0 picks a free one at :meth:`start`. A port reserved with
            :meth:`reserve_endpoint` is taken over without a window where another process could grab it.
        anonymous_read: With a token set, whether public repos can be read without it (as on huggingface.co).
        lfs_threshold: Files this big or bigger are uploaded through Git LFS (smaller ones too when binary or
            matched by ``.gitattributes``).

    Example:
        ```python
        from huggingface_hub import HfApi

        from hf_relrep.testing import LocalHub

        with LocalHub() as hub:
            api = HfApi(endpoint=hub.endpoint)
            api.create_repo("test-user/demo")
            api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="test-user/demo")
            assert [s.rfilename for s in api.model_info("test-user/demo").siblings] == [".gitattributes", "a.txt"]
        ```
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        token: str | None = None,
        user: str = "test-user",
        port: int = 0,
        anonymous_read: bool = True,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
    ) -> None:
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="hf-relrep-localhub-"))
            self._cleanup_root = weakref.finalize(self, shutil.rmtree, str(self.root), True)
        else:
            self.root = Path(root)
            self._cleanup_root = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.user = user
        self.port = port
        self.anonymous_read = anonymous_read
        self.lfs_threshold = lfs_threshold
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self._upload_key = secrets.token_hex(16)  # signs LFS upload URLs: the client PUTs them without a token
        self._repo_locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._lifecycle = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._orphans: list[threading.Thread] = []
        self._placeholder: socket.socket | None = None  # holds the port between a crash and a restart
        self._from_pool = False

    # ---------------------------------------------------------------------------------------------------- lifecycle

    @staticmethod
    def reserve_endpoint() -> str:
        """Reserve a free port on 127.0.0.1 for a future :class:`LocalHub` and return its endpoint URL.

        The port is bound (not listening: connections are refused) until ``LocalHub(port=...)`` takes it over, so
        ``HF_ENDPOINT`` can be set before ``huggingface_hub`` is imported and before any server exists.

        Returns:
            ``"http://127.0.0.1:PORT"``.
        """
        sock = _bind(0)
        port = sock.getsockname()[1]
        with _POOL_LOCK:
            _POOL[port] = sock
        return f"http://{HOST}:{port}"

    @property
    def endpoint(self) -> str:
        """Base URL of the server, e.g. ``"http://127.0.0.1:43117"`` (the port is known once started)."""
        if not self.port:
            raise RuntimeError("LocalHub was created with port=0: its endpoint is known once start() has run")
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server currently accepts connections."""
        return self._httpd is not None

    def start(self) -> "LocalHub":
        """Start serving in a background thread (again after :meth:`stop` or an injected crash).

        Returns:
            The hub itself.
        """
        with self._lifecycle:
            if self._httpd is not None:
                return self
            sock, self._placeholder = self._placeholder, None  # kept by a crash: same port, same origin
            if sock is None:
                with _POOL_LOCK:
                    sock = _POOL.pop(self.port, None) if self.port else None
                self._from_pool = sock is not None
            if sock is None:
                sock = _bind(self.port)
            self.port = sock.getsockname()[1]
            sock.listen(128)
            self._httpd = _Server(self, sock)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"LocalHub:{self.port}",
                daemon=True,
            )
            self._thread.start()
        logger.debug("LocalHub serving %s from %s", self.endpoint, self.root)
        return self

    def stop(self) -> None:
        """Stop serving: close every connection and join every server thread. Idempotent.

        Must not be called from a request of this hub. The storage folder is kept (a later :meth:`start` serves it
        again). A port reserved with :meth:`reserve_endpoint` stays reserved; any other port is released.
        """
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None and thread is not None:
            httpd.shutdown()
            thread.join()
            httpd.close_all()
        with self._lifecycle:
            orphans, self._orphans = self._orphans, []
        for orphan in orphans:  # request threads of a crashed server, finishing their own cleanup
            orphan.join()
        with self._lifecycle:
            placeholder, self._placeholder = self._placeholder, None
            if self._from_pool and self.port:
                if placeholder is None:
                    with contextlib.suppress(OSError):
                        placeholder = _bind(self.port)
                if placeholder is not None:
                    with _POOL_LOCK:
                        _POOL[self.port] = placeholder
            elif placeholder is not None:
                placeholder.close()

    def close(self) -> None:
        """Stop the server and remove the storage folder if it is a temporary one."""
        self.stop()
        if self._cleanup_root is not None:
            self._cleanup_root()

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalHub({str(self.root)!r}, port={self.port}, {state})"

    def _crash(self, httpd: "_Server", connection: socket.socket) -> None:
        """Die like a killed process, from the request thread that handles ``connection``.

        In this order: stop accepting, close the listener (later connections are refused, not reset), keep the port
        bound (unlistened) so that :meth:`start` reuses the endpoint, drop ``connection``, close the others.
        """
        with self._lifecycle:
            if self._httpd is not httpd:  # being stopped by somebody else
                httpd = None
            else:
                thread, self._httpd, self._thread = self._thread, None, None
                self._orphans.append(threading.current_thread())
        if httpd is not None:
            httpd.shutdown()
            if thread is not None:
                thread.join()
            httpd.socket.close()
            try:
                placeholder = _bind(self.port)
            except OSError:  # somebody took the port: the next start() binds another one or fails
                placeholder = None
            with self._lifecycle:
                self._placeholder = placeholder
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        if httpd is not None:
            httpd.close_all()

    # ------------------------------------------------------------------------------------------------------ storage

    def _repo(self, repo_type: str, namespace: str, name: str) -> _Repo:
        if not (_NAME_RE.match(namespace) and _NAME_RE.match(name)) or ".." in namespace + name:
            raise _HubError(400, f"Invalid repo id: {namespace}/{name}")
        return _Repo(self, repo_type, namespace, name)

    def _lock(self, repo: _Repo) -> threading.Lock:
        with self._locks_lock:
            return self._repo_locks.setdefault(repo.dir, threading.Lock())

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def _put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha256)
        if not path.is_file():
            _atomic_write(path, data)
        return sha256

    def _create_repo(self, repo: _Repo, private: bool) -> None:
        """Create a repo with the Hub's initial commit (a default ``.gitattributes``) on ``main``."""
        with self._lock(repo):
            if repo.exists():
                raise _HubError(409, f"You already created this {repo.type} repo: {repo.id}")
            if repo.dir.exists():  # leftovers of a creation killed half-way
                shutil.rmtree(repo.dir)
            repo.set_meta({"private": private, "createdAt": _now(), "type": repo.type})
            data = DEFAULT_GITATTRIBUTES.encode()
            sha256 = self._put_blob(data)
            entry = {"oid": _git_blob_sha1(data), "size": len(data), "sha256": sha256, "lfs": False}
            sha = repo.write_commit({".gitattributes": entry}, [], "initial commit", "", self.user)
            repo.set_refs({"branches": {"main": sha}, "tags": {}})  # refs.json last: its presence = repo exists


_POOL: dict[int, socket.socket] = {}
_POOL_LOCK = threading.Lock()


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def _close_pool() -> None:
    with _POOL_LOCK:
        for sock in _POOL.values():
            sock.close()
        _POOL.clear()


atexit.register(_close_pool)


# --------------------------------------------------------------------------------------------------------------------
# HTTP server and request handler
# --------------------------------------------------------------------------------------------------------------------


class _Server(HTTPServer):
    """HTTPServer on a given socket, one thread per connection, all tracked so that stop() closes and joins them."""

    def __init__(self, hub: LocalHub, sock: socket.socket) -> None:
        super().__init__((HOST, hub.port), _Handler, bind_and_activate=False)
        self.socket.close()  # replaced by the reserved, already bound socket
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = HOST, self.server_address[1]
        self.hub = hub
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._process, args=(request, client_address), name=f"LocalHub:{self.server_port}:request"
        )
        thread.daemon = True  # never keeps the interpreter alive; close_all() joins it
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def close_all(self) -> None:
        """After shutdown(): close the listener, cut every connection, join every request thread but the caller."""
        self.server_close()
        with self._connections_lock:
            connections = dict(self._connections)
        current = threading.current_thread()
        for thread, conn in connections.items():
            if thread is not current:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in connections:
            if thread is not current:
                thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("LocalHub: error while handling a request from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Routes one request (HTTP/1.0: one request per connection) to the Hub endpoint it targets."""

    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "hf-relrep-LocalHub/1"
    timeout = 60  # a silent client cannot block stop() forever

    # ------------------------------------------------------------------------------------------------ plumbing

    @property
    def hub(self) -> LocalHub:
        return self.server.hub

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        self.hub.requests.append(RequestRecord(self.command, self.path, status))
        logger.debug("LocalHub %s %s -> %s", self.command, self.path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("LocalHub: " + format, *args)

    def _iter_body(self) -> Iterator[bytes]:
        """The request body, piece by piece (``Content-Length`` or chunked transfer encoding)."""
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(3)
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, size: int) -> Iterator[bytes]:
        while size > 0:
            data = self.rfile.read(min(size, _CHUNK))
            if not data:
                raise _HubError(400, "Request body shorter than announced")
            size -= len(data)
            yield data

    def _body(self) -> bytes:
        return b"".join(self._iter_body())

    def _json_body(self) -> Any:
        body = self._body()
        try:
            return json.loads(body or b"{}")
        except ValueError as e:
            raise _HubError(400, f"Invalid JSON body: {e}") from e

    def _drain(self) -> None:
        """Read an unread request body, so that closing the socket does not reset the answer in flight."""
        if not self._body_read:
            with contextlib.suppress(Exception):
                for _ in self._iter_body():
                    pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._drain()
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, error: _HubError) -> None:
        headers = {"X-Error-Message": error.message.encode("ascii", "replace").decode().replace("\n", " ")}
        if error.code:
            headers["X-Error-Code"] = error.code
        headers.update(error.headers)
        self._send_json({"error": error.detail or error.message}, error.status, headers)

    def _drop(self, stop_server: bool) -> None:
        self._drain()
        self.close_connection = True
        self.hub.requests.append(RequestRecord(self.command, self.path, 0))
        if stop_server:
            self.hub._crash(self.server, self.connection)
        else:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------------------------------------ auth

    def _authenticate(self, route_needs_auth: bool) -> None:
        """Set ``self.authed``; a wrong token, or no token where one is needed, is a 401."""
        token = self.hub.token
        header = self.headers.get("Authorization", "")
        sent = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None:
            self.authed = True
        elif sent is None:
            self.authed = False
        elif secrets.compare_digest(sent.encode(), token.encode()):
            self.authed = True
        else:
            detail = f"{_INVALID_CREDENTIALS}: the bearer token is not the one this LocalHub was started with"
            raise _HubError(401, _INVALID_CREDENTIALS, detail=detail)
        if route_needs_auth and not self.authed and not self.hub.anonymous_read:
            raise _HubError(401, "This LocalHub needs a token for every request (anonymous_read=False)")

    def _require_write(self) -> None:
        if not self.authed:
            raise _HubError(401, "You must be authenticated to write to this LocalHub: pass the token it was given")

    def _open(self, repo_type: str, namespace: str, name: str, *, write: bool = False) -> _Repo:
        if write:
            self._require_write()
        repo = self.hub._repo(repo_type, namespace, name)
        if not repo.exists() or (repo.meta()["private"] and not self.authed):
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    # ------------------------------------------------------------------------------------------------ routing

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        segments = url.path.split("/")[1:]
        query = parse_qs(url.query)
        self.authed = False
        self._body_read = False
        try:
            if segments[:2] in (["api", "agent-harnesses"], ["api", "telemetry"]) or segments[:1] == ["_lfs"]:
                self._authenticate(route_needs_auth=False)
                self._route_open(method, segments, query)
            else:
                self._authenticate(route_needs_auth=True)
                if segments[:1] == ["api"]:
                    self._route_api(method, segments[1:], query)
                else:
                    self._route_repo_url(method, segments)
        except _DropConnection as drop:
            self._drop(drop.stop_server)
        except _HubError as error:
            self._send_error(error)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:
            logger.exception("LocalHub: internal error on %s %s", method, self.path)
            self._send_error(_HubError(500, f"LocalHub internal error: {type(e).__name__}: {e}"))

    def _route_open(self, method: str, segments: list[str], query: dict[str, list[str]]) -> None:
        if segments[:2] == ["api", "agent-harnesses"]:
            self._send_json({"standardEnvVars": [], "harnesses": {}})
        elif segments[:2] == ["api", "telemetry"]:
            self._send_json({})
        elif segments[:2] == ["_lfs", "upload"] and len(segments) == 3 and method == "PUT":
            self._lfs_upload(segments[2], query)
        elif segments[:2] == ["_lfs", "verify"] and len(segments) == 3 and method == "POST":
            self._lfs_verify(segments[2])
        else:
            raise _HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")

    def _route_api(self, method: str, rest: list[str], query: dict[str, list[str]]) -> None:
        route = (method, *rest[:2])
        if route == ("GET", "whoami-v2"):
            self._whoami()
        elif route == ("POST", "repos", "create"):
            self._create_repo()
        elif route == ("DELETE", "repos", "delete"):
            self._delete_repo()
        elif route == ("POST", "validate-yaml"):
            self._validate_yaml()
        elif rest and rest[0] in _REPO_TYPES:
            if len(rest) < 3:
                raise _HubError(404, "Repository not found", "RepoNotFound")
            repo_type, namespace, name = _REPO_TYPES[rest[0]], unquote(rest[1]), unquote(rest[2])
            self._route_repo_api(method, repo_type, namespace, name, [unquote(s) for s in rest[3:]], query)
        else:
            raise _HubError(404, f"LocalHub does not serve {method} /api/{'/'.join(rest)}")

    def _route_repo_api(
        self, method: str, repo_type: str, namespace: str, name: str, action: list[str], query: dict[str, list[str]]
    ) -> None:
        kind = action[0] if action else ""
        if method == "GET" and (not action or (kind == "revision" and len(action) == 2)):
            self._repo_info(self._open(repo_type, namespace, name), action[1] if action else "main")
        elif method == "GET" and kind == "tree" and len(action) >= 2:
            repo = self._open(repo_type, namespace, name)
            self._tree(repo, action[1], "/".join(action[2:]).strip("/"), query)
        elif method == "POST" and kind == "paths-info" and len(action) == 2:
            self._paths_info(self._open(repo_type, namespace, name), action[1])
        elif method == "GET" and kind == "refs" and len(action) == 1:
            self._refs(self._open(repo_type, namespace, name))
        elif method == "GET" and kind == "commits" and len(action) == 2:
            self._commits(self._open(repo_type, namespace, name), action[1])
        elif method in ("POST", "DELETE") and kind in ("branch", "tag") and len(action) == 2:
            repo = self._open(repo_type, namespace, name, write=True)
            self._ref_change(repo, method, kind, action[1])
        elif method == "POST" and kind == "preupload" and len(action) == 2:
            self._preupload(self._open(repo_type, namespace, name, write=True), action[1], query)
        elif method == "POST" and kind == "commit" and len(action) == 2:
            self._commit(self._open(repo_type, namespace, name, write=True), action[1], query)
        elif method == "PUT" and kind == "settings" and len(action) == 1:
            self._settings(self._open(repo_type, namespace, name, write=True))
        else:
            raise _HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")

    def _route_repo_url(self, method: str, segments: list[str]) -> None:
        repo_type = "model"
        if segments and segments[0] in _REPO_TYPES and segments[0] != "models":
            repo_type, segments = _REPO_TYPES[segments[0]], segments[1:]
        if len(segments) < 2 or segments[1] == "resolve":
            raise _HubError(404, "Repository not found", "RepoNotFound")  # ids without a namespace do not exist
        namespace, name = unquote(segments[0]), unquote(segments[1])
        if method in ("GET", "HEAD") and len(segments) >= 5 and segments[2] == "resolve":
            path = unquote("/".join(segments[4:]))
            self._resolve(self._open(repo_type, namespace, name), unquote(segments[3]), path, method)
        elif method == "POST" and name.endswith(".git") and segments[2:] == ["info", "lfs", "objects", "batch"]:
            self._lfs_batch(self._open(repo_type, namespace, name.removesuffix(".git"), write=True))
        else:
            raise _HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")

    # ------------------------------------------------------------------------------------------------ account, repos

    def _whoami(self) -> None:
        if not self.authed:
            raise _HubError(401, "Invalid user token: whoami needs the token of this LocalHub")
        user = self.hub.user
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@localhost",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}},
            }
        )

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in _URL_PREFIXES:
            raise _HubError(400, f"Invalid repo type: {repo_type}")
        repo = self.hub._repo(repo_type, body.get("organization") or self.hub.user, str(body.get("name", "")))
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        url = f"{self.hub.endpoint}/{repo.url_path}"
        try:
            self.hub._create_repo(repo, private)
        except _HubError as error:
            if error.status == 409:
                self._send_json({"error": error.message, "url": url}, 409, {"X-Error-Message": error.message})
                return
            raise
        self._send_json({"url": url, "name": repo.id, "id": repo.id})

    def _delete_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo = self.hub._repo(body.get("type") or "model", body.get("organization") or self.hub.user, body["name"])
        with self.hub._lock(repo):
            if not repo.exists():
                raise _HubError(404, "Repository not found", "RepoNotFound")
            (repo.dir / "refs.json").unlink()  # the repo is gone at once, even if the rmtree below is interrupted
            shutil.rmtree(repo.dir)
        self._send_json({})

    def _settings(self, repo: _Repo) -> None:
        body = self._json_body()
        meta = repo.meta()
        if "private" in body:
            meta["private"] = bool(body["private"])
        if "visibility" in body:
            meta["private"] = body["visibility"] != "public"
        repo.set_meta(meta)
        self._send_json({"private": meta["private"]})

    def _validate_yaml(self) -> None:
        content = str(self._json_body().get("content", ""))
        errors: list[dict[str, str]] = []
        if content.startswith("---"):
            end = content.find("\n---", 3)
            try:
                import yaml

                metadata = yaml.safe_load(content[3:end] if end != -1 else "")
                if metadata is not None and not isinstance(metadata, dict):
                    errors.append({"message": "YAML metadata must be a mapping"})
            except ImportError:  # pragma: no cover - pyyaml is a dependency of hf-relrep
                pass
            except Exception as e:
                errors.append({"message": f"Invalid YAML metadata: {e}"})
        self._send_json({"errors": errors, "warnings": []}, 400 if errors else 200)

    # ------------------------------------------------------------------------------------------------ reading

    def _entry_json(self, path: str, entry: dict[str, Any], last_commit: dict | None) -> dict:
        item: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
        if last_commit is not None:
            item["lastCommit"] = {"id": last_commit["id"], "title": last_commit["title"], "date": last_commit["date"]}
        return item

    def _last_commit(self, repo: _Repo, sha: str, path: str) -> dict[str, Any]:
        """The newest commit reachable from ``sha`` that changed ``path`` (a file or a folder prefix)."""

        def state(commit: dict[str, Any]) -> Any:
            tree = commit["tree"]
            return tree.get(path) or sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(path + "/"))

        found: dict[str, Any] | None = None
        for commit in repo.history(sha):
            if found is not None and state(commit) != state(found):
                break
            found = commit
        assert found is not None
        return found

    def _repo_info(self, repo: _Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        commit, meta = repo.commit(sha), repo.meta()
        siblings = []
        for path, entry in sorted(commit["tree"].items()):
            sibling: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
            if entry["lfs"]:
                pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit["date"],
            "createdAt": meta["createdAt"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo.type == "space":
            info.update({"sdk": "static", "runtime": {"stage": "NO_APP_FILE"}})
        self._send_json(info)

    def _directories(self, tree: dict[str, Any]) -> set[str]:
        return {path.rsplit("/", i)[0] for path in tree for i in range(1, path.count("/") + 1)}

    def _folder_json(self, tree: dict[str, Any], folder: str, last_commit: dict | None) -> dict[str, Any]:
        listing = sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(folder + "/"))
        item: dict[str, Any] = {
            "type": "directory",
            "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(),
            "size": 0,
            "path": folder,
        }
        if last_commit is not None:
            item["lastCommit"] = {"id": last_commit["id"], "title": last_commit["title"], "date": last_commit["date"]}
        return item

    def _tree(self, repo: _Repo, revision: str, folder: str, query: dict[str, list[str]]) -> None:
        sha = repo.resolve(revision)
        tree = repo.commit(sha)["tree"]
        recursive, expand = _is_true(query.get("recursive")), _is_true(query.get("expand"))
        directories = self._directories(tree)
        if folder and folder not in directories:
            raise _HubError(404, f"Folder not found: {folder}", "EntryNotFound", {"X-Repo-Commit": sha})
        prefix = f"{folder}/" if folder else ""
        items = []
        for path in sorted(set(tree) | directories):
            if not path.startswith(prefix) or (not recursive and "/" in path[len(prefix) :]):
                continue
            last = self._last_commit(repo, sha, path) if expand else None
            if path in tree:
                items.append(self._entry_json(path, tree[path], last))
            else:
                items.append(self._folder_json(tree, path, last))
        self._send_json(items)

    def _paths_info(self, repo: _Repo, revision: str) -> None:
        form = parse_qs(self._body().decode())
        sha = repo.resolve(revision)
        tree = repo.commit(sha)["tree"]
        expand = _is_true(form.get("expand"))
        directories = self._directories(tree)
        items = []
        for path in dict.fromkeys(p.strip("/") for p in form.get("paths", [])):
            last = self._last_commit(repo, sha, path) if expand and (path in tree or path in directories) else None
            if path in tree:
                items.append(self._entry_json(path, tree[path], last))
            elif path in directories:
                items.append(self._folder_json(tree, path, last))
        self._send_json(items)

    def _refs(self, repo: _Repo) -> None:
        refs = repo.refs()

        def listing(kind: str, prefix: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": s} for n, s in sorted(refs[kind].items())]

        self._send_json(
            {
                "branches": listing("branches", "refs/heads/"),
                "tags": listing("tags", "refs/tags/"),
                "converts": [],
                "pullRequests": [],
            }
        )

    def _commits(self, repo: _Repo, revision: str) -> None:
        items = [
            {
                "id": commit["id"],
                "title": commit["title"],
                "message": commit["message"],
                "date": commit["date"],
                "authors": [{"user": author, "avatar": None} for author in commit["authors"]],
            }
            for commit in repo.history(repo.resolve(revision))
        ]
        self._send_json(items)

    def _resolve(self, repo: _Repo, revision: str, path: str, method: str) -> None:
        sha = repo.resolve(revision)
        entry = repo.commit(sha)["tree"].get(path)
        if entry is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        size = entry["size"]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry["oid"]}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(size)})
        start, end, status = 0, size, 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None or match.groups() == ("", ""):
                raise _HubError(416, f"Invalid Range: {range_header}", headers={"Content-Range": f"bytes */{size}"})
            first, last = match.groups()
            start, end = (
                (int(first), min(int(last) + 1 if last else size, size)) if first else (size - int(last), size)
            )
            if start >= size or start >= end:
                raise _HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            start, status = max(start, 0), 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        fault = self.hub.faults._take_download(repo.id, path) if method == "GET" else None
        blob = self.hub._blob_path(entry["sha256"])
        if fault is None:
            headers["Content-Length"] = str(end - start)
            self._send_headers(status, headers)
            if method == "GET":
                with blob.open("rb") as f:
                    f.seek(start)
                    remaining = end - start
                    while remaining > 0:
                        chunk = f.read(min(remaining, _CHUNK))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        remaining -= len(chunk)
            return
        with blob.open("rb") as f:
            f.seek(start)
            body = bytearray(f.read(end - start))
        if fault == "corrupt":
            middle = size // 2
            for position in range(max(middle, start), min(middle + 16, end)):
                body[position - start] ^= 0xFF
        elif fault == "truncate":
            body = body[: len(body) // 2]
        headers["Content-Length"] = str(end - start if fault == "disconnect" else len(body))
        self._send_headers(status, headers)
        self.wfile.write(body[: len(body) // 2] if fault == "disconnect" else body)
        if fault == "disconnect":
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self._drain()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    # ------------------------------------------------------------------------------------------------ writing

    def _ref_change(self, repo: _Repo, method: str, kind: str, name: str) -> None:
        body = self._json_body() if method == "POST" else {}
        with self.hub._lock(repo):
            refs = repo.refs()
            if kind == "branch":
                if method == "POST":
                    if name in refs["branches"]:
                        raise _HubError(409, f"Reference already exists: refs/heads/{name}")
                    refs["branches"][name] = repo.resolve(body.get("startingPoint") or "main")
                elif name == "main":
                    raise _HubError(403, "Cannot delete the default branch 'main'")
                elif refs["branches"].pop(name, None) is None:
                    raise _HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            elif method == "POST":  # POST /tag/{revision} {"tag": name}
                tag = str(body.get("tag", ""))
                if not tag:
                    raise _HubError(400, "Missing 'tag' in the request body")
                if tag in refs["tags"]:
                    raise _HubError(409, f"Tag already exists: {tag}")
                refs["tags"][tag] = repo.resolve(name)
            elif refs["tags"].pop(name, None) is None:  # DELETE /tag/{tag}
                raise _HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            repo.set_refs(refs)
        self._send_json({})

    def _branch_for_write(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> str:
        if _is_true(query.get("create_pr")):
            raise _HubError(400, "LocalHub does not support pull requests: commit with create_pr=False")
        branch = revision.removeprefix("refs/heads/")
        if branch not in repo.refs()["branches"]:
            repo.resolve(revision)  # unknown revision: 404 RevisionNotFound
            raise _HubError(400, f"Can only commit to a branch, not to {revision}")
        return branch

    def _preupload(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> None:
        body = self._json_body()
        branch = self._branch_for_write(repo, revision, query)
        tree = repo.commit(repo.resolve(branch))["tree"]
        gitattributes_entry = tree.get(".gitattributes")
        gitattributes = (
            self.hub._blob_path(gitattributes_entry["sha256"]).read_text(errors="replace")
            if gitattributes_entry
            else ""
        )
        files = []
        for item in body.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = size > 0 and (
                size >= self.hub.lfs_threshold or b"\0" in sample or _gitattributes_lfs(path, gitattributes)
            )
            existing = tree.get(path)
            oid = None
            if existing is not None:
                oid = existing["sha256"] if existing["lfs"] else existing["oid"]
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": _gitignored(path, body.get("gitIgnore") or ""),
                    "oid": oid,
                }
            )
        self._send_json({"files": files, "commitOid": repo.resolve(branch)})

    def _lfs_batch(self, repo: _Repo) -> None:
        body = self._json_body()
        if body.get("operation") != "upload":
            raise _HubError(400, "LocalHub serves LFS downloads through /resolve: only 'upload' batches are supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), int(obj.get("size", -1))
            if not _SHA256_RE.match(oid) or size < 0:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            blob = self.hub._blob_path(oid)
            if not (blob.is_file() and blob.stat().st_size == size):
                base = self.hub.endpoint
                item["actions"] = {
                    "upload": {
                        "href": f"{base}/_lfs/upload/{oid}?size={size}&key={self.hub._upload_key}",
                        "header": {},
                    },
                    "verify": {"href": f"{base}/_lfs/verify/{oid}", "header": {}},
                }
            objects.append(item)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, oid: str, query: dict[str, list[str]]) -> None:
        if not secrets.compare_digest((query.get("key") or [""])[-1], self.hub._upload_key):
            raise _HubError(403, "Invalid or expired LFS upload URL")
        if not _SHA256_RE.match(oid):
            raise _HubError(400, f"Invalid LFS oid: {oid}")
        incoming = self.hub.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        tmp = incoming / f"{oid}.{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as f:
                for chunk in self._iter_body():
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            if digest.hexdigest() != oid:
                raise _HubError(400, f"LFS upload does not match its oid: got sha256 {digest.hexdigest()}, want {oid}")
            expected = (query.get("size") or [None])[-1]
            if expected is not None and int(expected) != size:
                raise _HubError(400, f"LFS upload has {size} bytes, announced {expected}")
            blob = self.hub._blob_path(oid)
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
        self._send_json({}, headers={"ETag": f'"{oid}"'})

    def _lfs_verify(self, oid: str) -> None:
        self._require_write()
        body = self._json_body()
        blob = self.hub._blob_path(oid)
        if not blob.is_file():
            raise _HubError(404, f"LFS object {oid} was not uploaded")
        if "size" in body and int(body["size"]) != blob.stat().st_size:
            raise _HubError(422, f"LFS object {oid} has size {blob.stat().st_size}, not {body['size']}")
        self._send_json({})

    def _commit(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> None:
        """Apply an ndjson commit: store its blobs first, then swap the branch ref (the only visible step)."""
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        branch = self._branch_for_write(repo, revision, query)
        header = next((line["value"] for line in lines if line.get("key") == "header"), None)
        if header is None:
            raise _HubError(400, "Commit payload has no header line")
        operations = [line for line in lines if line.get("key") != "header"]
        for op in operations:
            if op.get("key") not in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                raise _HubError(400, f"Unsupported commit operation: {op.get('key')}")
            if not _valid_repo_path(str(op.get("value", {}).get("path", "")).strip("/")):
                raise _HubError(400, f"Invalid path in commit: {op.get('value', {}).get('path')!r}")

        # 1. Store every blob of the commit (invisible until the ref moves).
        fault = self.hub.faults._take_commit(repo.id)
        additions: dict[str, dict[str, Any]] = {}
        files_done = 0
        for op in operations:
            value = op["value"]
            if op["key"] not in ("file", "lfsFile"):
                continue
            if fault is not None and files_done == fault.after_files:
                raise _DropConnection(fault.stop_server)
            if op["key"] == "file":
                if value.get("encoding", "base64") != "base64":
                    raise _HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                data = base64.b64decode(value.get("content", ""))
                sha256 = self.hub._put_blob(data)
                entry = {"oid": _git_blob_sha1(data), "size": len(data), "sha256": sha256, "lfs": False}
            else:
                sha256 = str(value.get("oid", ""))
                blob = self.hub._blob_path(sha256)
                if not _SHA256_RE.match(sha256) or not blob.is_file():
                    raise _HubError(422, f"LFS file {value['path']} was not uploaded (oid {sha256})")
                size = blob.stat().st_size
                if "size" in value and int(value["size"]) != size:
                    raise _HubError(422, f"LFS file {value['path']}: size {value['size']} != stored {size}")
                entry = {"oid": _git_blob_sha1(_lfs_pointer(sha256, size)), "size": size, "sha256": sha256}
                entry["lfs"] = True
            additions[value["path"]] = entry
            files_done += 1
        if fault is not None:
            raise _DropConnection(fault.stop_server)

        # 2. Build the new snapshot on the current head and swap the ref, under the repo lock.
        with self.hub._lock(repo):
            refs = repo.refs()
            head = refs["branches"][branch]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise _HubError(412, f"A commit has happened since {parent}: the head of '{branch}' is now {head}")
            tree = dict(repo.commit(head)["tree"])
            for op in operations:
                path = op["value"]["path"].strip("/")
                if op["key"] == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif op["key"] == "deletedFolder":
                    inside = [p for p in tree if p.startswith(path + "/")]
                    if not inside:
                        raise _HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in inside:
                        del tree[p]
                else:
                    tree[path] = additions[op["value"]["path"]]
            author = self.hub.user if self.authed else "anonymous"
            summary = str(header.get("summary") or "Upload files")
            sha = repo.write_commit(tree, [head], summary, str(header.get("description") or ""), author)
            refs["branches"][branch] = sha
            repo.set_refs(refs)  # atomic replace: the whole commit becomes visible here, or nothing does
        commit_url = f"{self.hub.endpoint}/{repo.url_path}/commit/{sha}"
        self._send_json({"success": True, "commitUrl": commit_url, "commitOid": sha, "pullRequestUrl": None})


# --------------------------------------------------------------------------------------------------------------------
# Process environment and the pytest fixture
# --------------------------------------------------------------------------------------------------------------------

_MARKER = "HF_RELREP_LOCAL_HUB"  # "<endpoint> <xdist worker id>" of the process that configured the environment
_REMOVED_VARIABLES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HUGGINGFACE_CO_STAGING",
    "HUGGINGFACE_HUB_CACHE",
    "HUGGINGFACE_ASSETS_CACHE",
    "TRANSFORMERS_CACHE",
)


def configure_hub_environment(endpoint: str | None = None, home: str | Path | None = None) -> str:
    """Point ``huggingface_hub``, ``transformers`` and ``datasets`` at a local hub and a throwaway ``HF_HOME``.

    Run at import of this module; call it yourself only to choose the endpoint or the home folder. Sets
    ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``, ``HF_HUB_DISABLE_TELEMETRY=1``, ``HF_HOME`` and every cache below it,
    and removes tokens and offline/staging switches from the environment. The globals that already imported Hub
    clients computed from the old environment are rewritten too.

    Args:
        endpoint: URL of the hub; ``None`` reserves a free port (:meth:`LocalHub.reserve_endpoint`).
        home: ``HF_HOME`` to use; ``None`` creates a temporary folder, removed at exit.

    Returns:
        The endpoint.
    """
    endpoint = (endpoint or LocalHub.reserve_endpoint()).rstrip("/")
    if home is None:
        home = tempfile.mkdtemp(prefix="hf-relrep-hf-home-")
        atexit.register(shutil.rmtree, home, True)
    home = Path(home)
    for name in _REMOVED_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(
        {
            _MARKER: f"{endpoint} {os.environ.get('PYTEST_XDIST_WORKER', '')}",
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_DATASETS_CACHE": str(home / "datasets"),
            "HF_MODULES_CACHE": str(home / "modules"),
            "HF_TOKEN_PATH": str(home / "token"),
        }
    )
    _patch_loaded_clients(endpoint, home)
    return endpoint


_PATCHED_PACKAGES = ("huggingface_hub", "transformers", "datasets", "evaluate", "peft", "accelerate")


def _patch_loaded_clients(endpoint: str, home: Path) -> list[str]:
    """Rewrite the import-time copies of the Hub environment in already imported clients.

    ``hf_relrep`` imports ``transformers`` (hence ``huggingface_hub``) in its ``__init__``, so these modules are loaded
    before this one can set the environment. Nothing of theirs touches the disk or the network at import; what they
    keep is module globals: ``huggingface_hub.constants`` (endpoint, caches, Xet and telemetry switches), copies of
    them elsewhere (``from ..constants import HF_HUB_CACHE``, ``datasets.config.HF_ENDPOINT``, URL templates, paths
    under the old ``HF_HOME``) and module-level ``HfApi`` objects. All are rewritten here.

    Returns:
        The ``module.attribute`` names rewritten.
    """
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None or (endpoint == constants.ENDPOINT and str(home) == constants.HF_HOME):
        return []
    old_endpoint, old_home = constants.ENDPOINT, constants.HF_HOME
    named: dict[str, Any] = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {HOST}),
        "_staging_mode": False,
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HOME": str(home),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }
    # String values to rewrite wherever they were copied: the old value of each named constant, the old endpoint,
    # URL templates on it, and any path under the old HF_HOME.
    replacements = {getattr(constants, k): v for k, v in named.items() if isinstance(getattr(constants, k, None), str)}
    replacements[old_endpoint] = endpoint

    def rewrite(value: Any) -> Any:
        text = str(value) if isinstance(value, (str, Path)) else None
        if text is None:
            return None
        if text in replacements:
            new = replacements[text]
        elif text.startswith(old_endpoint + "/") and "{" in text:
            new = endpoint + text[len(old_endpoint) :]
        elif text.startswith(old_home + os.sep):
            new = str(home) + text[len(old_home) :]
        else:
            return None
        return Path(new) if isinstance(value, Path) else new

    from huggingface_hub import HfApi  # already imported: constants is loaded

    patched = []
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] not in _PATCHED_PACKAGES:
            continue
        for attr, value in list(vars(module).items()):
            if module is constants and attr in named:
                new = named[attr]
            elif isinstance(value, HfApi):
                if value.endpoint == old_endpoint:
                    value.endpoint = endpoint
                    patched.append(f"{module_name}.{attr}.endpoint")
                continue
            else:
                new = rewrite(value)
            if new is not None and new != value:
                setattr(module, attr, new)
                patched.append(f"{module_name}.{attr}")
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and getattr(transformers_hub, "_hf_api", None) is not None:
        transformers_hub._hf_api = None  # transformers' cached HfApi: rebuilt on next use, on the new endpoint
        patched.append("transformers.utils.hub._hf_api")
    hf_file_system = sys.modules.get("huggingface_hub.hf_file_system")
    if hf_file_system is not None:
        hf_file_system.HfFileSystem.clear_instance_cache()
    logger.debug("hf_relrep.testing patched %s", ", ".join(patched))
    return patched


def _session_endpoint() -> str:
    """The endpoint of this process: the one of the parent process that configured it, or a new one.

    A process started by a test (a CLI run, a script) inherits the environment, hence the endpoint of the test's hub.
    A pytest-xdist worker inherits it from the controller but runs its own hub: it reserves another port.
    """
    endpoint, _, worker = os.environ.get(_MARKER, "").partition(" ")
    same_worker = worker == os.environ.get("PYTEST_XDIST_WORKER", "")
    if endpoint and same_worker and os.environ.get("HF_ENDPOINT", "").rstrip("/") == endpoint:
        _patch_loaded_clients(endpoint, Path(os.environ["HF_HOME"]))
        return endpoint
    return configure_hub_environment()


SESSION_ENDPOINT = _session_endpoint()
"""Endpoint set in ``HF_ENDPOINT`` when this module was imported; the ``local_hub`` fixture serves it."""


if pytest is not None:

    @pytest.fixture
    def local_hub(tmp_path: Path) -> Iterator[LocalHub]:
        """A fresh, empty :class:`LocalHub` serving ``HF_ENDPOINT``, stopped (all threads joined) after the test.

        Function-scoped: each test gets its own storage (``tmp_path / "local-hub"``), no token, user
        ``"test-user"``, and no fault armed; set ``local_hub.token`` or arm ``local_hub.faults`` inside the test.
        The port (``SESSION_ENDPOINT``) is reserved for the whole session because huggingface_hub reads
        ``HF_ENDPOINT`` once. Downloads share the session's temporary ``HF_HUB_CACHE``; commit ids are unique, so
        tests do not see each other's files (pass ``cache_dir=tmp_path`` for a cold cache).
        """
        port = int(urlsplit(SESSION_ENDPOINT).port or 0)
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None and constants.ENDPOINT != SESSION_ENDPOINT:
            _patch_loaded_clients(SESSION_ENDPOINT, Path(os.environ["HF_HOME"]))
        hub = LocalHub(tmp_path / "local-hub", port=port)
        try:
            hub.start()
        except OSError as e:
            hub.close()
            raise RuntimeError(
                f"local_hub cannot listen on {SESSION_ENDPOINT}: is another LocalHub using that port? ({e})"
            ) from e
        try:
            yield hub
        finally:
            hub.close()

else:  # pragma: no cover

    def local_hub() -> None:  # type: ignore[misc]
        """Placeholder: the ``local_hub`` fixture needs pytest."""
        raise RuntimeError("the local_hub fixture needs pytest")
