"""Content-addressed, verified cache entries: keys from what the inputs *are*, payloads that prove they are intact.

- **Keys** come from content hashes: `file_sha256` hashes a file once and remembers the digest by its size,
  modification time and inode (in memory and in ``<cache>/content-hashes.json``), so a weight file changed in place
  gets a new key without re-hashing unchanged ones on every run; files in the Hub cache are named by the Hub's sha256,
  which is used as is. `folder_key` combines the digests of every file of a model folder (weights, config, tokenizer).
- **Entries** are safetensors files whose metadata holds the sha256 of their tensors (`write_entry`). `read_entry`
  returns `None` for a missing entry and, for one that is unreadable (truncated), altered or written for another key,
  warns, removes it and returns `None`: the caller rebuilds it. Writes are atomic (a temporary sibling, then
  `os.replace`), so concurrent runs that build the same entry each leave a complete file and readers never see a part.
"""

import contextlib
import hashlib
import json
import os
import re
import threading
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import hashing
from .files import atomic_write_text, clean_leftovers, temporary_sibling


HASHES_FILE = "content-hashes.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MEMO: dict[str, tuple[int, int, int, str]] = {}
_LOCK = threading.Lock()


class CacheEntryWarning(UserWarning):
    """A cache entry was unreadable or altered: it was removed and is being rebuilt."""


def _stamp(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _hub_blob_sha256(path: Path) -> str | None:
    """The sha256 the Hub lists for a file of its cache: the blob's name (``.../blobs/<sha256>``), for LFS files."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and _SHA256.fullmatch(real.name):
        return real.name
    return None


def file_sha256(path: str | os.PathLike, *, memo_dir: str | os.PathLike | None = None) -> str:
    """`hf_relrep.utils.hashing.file_sha256` of a file, hashed once per (size, mtime, inode) and remembered.

    A file of the Hub cache (a link to ``blobs/<sha256>``) is not read: its blob's name is the digest.

    Args:
        path: the file.
        memo_dir: where to keep the digests between runs (``content-hashes.json``); `None` keeps them in memory only.
    """
    path = Path(path)
    blob = _hub_blob_sha256(path)
    if blob is not None:
        return blob
    real = os.path.realpath(path)
    stamp = _stamp(path)
    with _LOCK:
        if real not in _MEMO and memo_dir is not None:
            _MEMO.update(_read_memo(Path(memo_dir)))
        cached = _MEMO.get(real)
    if cached is not None and tuple(cached[:3]) == stamp:
        return cached[3]
    value = hashing.file_sha256(path)
    with _LOCK:
        _MEMO[real] = (*stamp, value)
    if memo_dir is not None:
        _write_memo(Path(memo_dir), real, (*stamp, value))
    return value


def _read_memo(memo_dir: Path) -> dict[str, tuple[int, int, int, str]]:
    try:
        payload = json.loads((memo_dir / HASHES_FILE).read_text())
        return {key: tuple(value) for key, value in payload.items() if len(value) == 4}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # missing or damaged: hashes are simply computed again


def _write_memo(memo_dir: Path, real: str, entry: tuple[int, int, int, str]) -> None:
    with contextlib.suppress(OSError):
        memo = _read_memo(memo_dir)
        memo[real] = entry
        atomic_write_text(memo_dir / HASHES_FILE, json.dumps(memo, indent=0, sort_keys=True))


def folder_key(folder: str | os.PathLike, *, memo_dir: str | os.PathLike | None = None) -> str:
    """A content key of a model folder: the sha256 over the names and `file_sha256` of all its files.

    README and card files do not change what a model computes and are left out.
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.lower().startswith("readme") or "/." in f"/{relative}":
            continue
        digest.update(f"{relative}\0{file_sha256(path, memo_dir=memo_dir)}\n".encode())
    return "sha256:" + digest.hexdigest()


def _payload_sha256(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def write_entry(path: str | os.PathLike, tensors: dict[str, torch.Tensor], *, key: str, **metadata: str) -> None:
    """Write a cache entry atomically, with the sha256 of its tensors and its key in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temporary_sibling(path)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    try:
        save_file(tensors, tmp, metadata={**metadata, "key": key, "payload_sha256": _payload_sha256(tensors)})
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_entry(path: str | os.PathLike, *, key: str) -> dict[str, torch.Tensor] | None:
    """The tensors of a verified cache entry; `None` when it is missing, or broken (then removed, with a warning)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as handle:  # one open file: a concurrent replace cannot mix two
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
        problem = None
        if metadata.get("key") != key:
            problem = "it was written for other inputs"
        elif metadata.get("payload_sha256") != _payload_sha256(tensors):
            problem = "its content does not match its checksum (altered or damaged)"
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        problem = f"it cannot be read ({' '.join(str(error).split())[:120]})"
    if problem is None:
        return tensors
    warnings.warn(
        f"Cache entry {path} is unusable: {problem}; removed, rebuilding it.", CacheEntryWarning, stacklevel=2
    )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


__all__ = ["CacheEntryWarning", "HASHES_FILE", "file_sha256", "folder_key", "read_entry", "write_entry"]
