"""Caches are content-addressed and verified: changed weights never reuse stale embeddings, a damaged or altered
entry is rebuilt with a warning, and concurrent runs each leave a complete entry."""

import json
import os
import shutil
import warnings

import pytest
import torch
from crashing import leftovers, wait_child
from safetensors.torch import save_file
from tiny_models import save_tiny_backbone
from transformers import AutoTokenizer

from hf_relrep.experiments.reproduce.features import cached_embeddings, embedding_cache_dir
from hf_relrep.modeling.loading import load_backbone
from hf_relrep.utils.cache import HASHES_FILE, CacheEntryWarning, file_sha256, folder_key, write_entry
from hf_relrep.zoo import embed_texts


TEXTS = ["a good film", "a bad film", "the plot was boring", "great acting"]


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_RELREP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _embed(folder, texts=TEXTS):
    backbone, tokenizer = load_backbone(folder), AutoTokenizer.from_pretrained(folder)
    options = {"encoder_path": str(folder), "pooling": "mean", "prefix": "", "max_length": 32}
    cached = cached_embeddings(backbone, tokenizer, texts, description="test", **options)
    fresh = embed_texts(backbone, tokenizer, texts, pooling="mean", max_length=32)
    return cached, fresh


def _entries():
    return sorted(embedding_cache_dir().glob("*.safetensors"))


def test_weights_changed_in_place_give_new_embeddings(tmp_path):
    folder = save_tiny_backbone(tmp_path / "encoder", seed=1)
    first, fresh = _embed(folder)
    torch.testing.assert_close(first, fresh)
    assert len(_entries()) == 1
    size = (folder / "model.safetensors").stat().st_size
    save_tiny_backbone(tmp_path / "other", seed=2)  # same architecture: a file of the same size, other weights
    shutil.copyfile(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    assert (folder / "model.safetensors").stat().st_size == size
    second, fresh = _embed(folder)
    torch.testing.assert_close(second, fresh)
    assert not torch.allclose(second, first) and len(_entries()) == 2


@pytest.mark.parametrize("damage", ["truncate", "alter", "other-key", "garbage"])
def test_a_damaged_or_altered_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    folder = save_tiny_backbone(tmp_path / "encoder", seed=1)
    expected, _ = _embed(folder)
    (entry,) = _entries()
    if damage == "truncate":
        data = entry.read_bytes()
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "alter":  # well-formed, same metadata, other numbers
        from safetensors import safe_open

        with safe_open(entry, framework="pt") as handle:
            metadata = handle.metadata()
        save_file({"embeddings": expected + 1.0}, entry, metadata=metadata)
    elif damage == "other-key":
        write_entry(entry, {"embeddings": expected + 1.0}, key="sha256:something-else")
    else:
        entry.write_bytes(b"not a safetensors file")
    with pytest.warns(CacheEntryWarning, match="rebuilding"):
        again, fresh = _embed(folder)
    torch.testing.assert_close(again, fresh)
    torch.testing.assert_close(again, expected)
    assert len(_entries()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheEntryWarning)  # the rebuilt entry is whole
        _embed(folder)


def test_concurrent_runs_building_the_same_entry_stay_safe(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("forks two writers")
    folder = save_tiny_backbone(tmp_path / "encoder", seed=1)
    backbone, tokenizer = load_backbone(folder), AutoTokenizer.from_pretrained(folder)
    options = {"encoder_path": str(folder), "pooling": "mean", "prefix": "", "max_length": 32}
    texts = TEXTS * 50
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            code = 0
            torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork
            try:
                for _ in range(5):
                    cached_embeddings(backbone, tokenizer, texts, description="race", **options)
            except BaseException:  # noqa: BLE001 - the status is the answer
                code = 1
            os._exit(code)
        children.append(pid)
    statuses = [wait_child(pid) for pid in children]
    assert statuses == [0, 0, 0]
    (entry,) = _entries()
    assert leftovers(entry) == []
    cached = cached_embeddings(backbone, tokenizer, texts, description="race", **options)  # no warning: whole
    torch.testing.assert_close(cached, embed_texts(backbone, tokenizer, texts, pooling="mean", max_length=32))


def test_files_are_hashed_once_per_size_mtime_inode_and_hub_blobs_by_name(tmp_path, cache_root, monkeypatch):
    import hashlib

    import hf_relrep.utils.cache as cache

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"x" * 1000)
    digest = file_sha256(weights, memo_dir=cache_root)
    assert digest == hashlib.sha256(b"x" * 1000).hexdigest()
    assert str(weights.resolve()) in json.loads((cache_root / HASHES_FILE).read_text())
    calls = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(cache.hashlib, "sha256", lambda *a: calls.append(1) or real_sha256(*a))
    cache._MEMO.clear()  # a new process: the digest comes from content-hashes.json
    assert file_sha256(weights, memo_dir=cache_root) == digest and calls == []
    weights.write_bytes(b"y" * 1000)  # changed in place: hashed again
    assert file_sha256(weights, memo_dir=cache_root) == hashlib.sha256(b"y" * 1000).hexdigest() and calls
    # In the Hub cache, an LFS file is a link to blobs/<its sha256>: the name is the digest, nothing is read.
    sha = "ab" * 32
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / sha).write_bytes(b"weights")
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "model.safetensors").symlink_to(tmp_path / "blobs" / sha)
    assert file_sha256(tmp_path / "snapshot" / "model.safetensors") == sha
    key = folder_key(tmp_path / "snapshot")
    (tmp_path / "snapshot" / "README.md").write_text("a card does not change what the model computes")
    assert folder_key(tmp_path / "snapshot") == key
