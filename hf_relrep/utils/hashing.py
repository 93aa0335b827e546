"""Content hashes of files and bytes: sha256 (what the Hub lists for LFS files) and git blob ids (for other files).

Files are read in chunks of `CHUNK` bytes, so a weight file of any size hashes in constant memory. Everything here
is a pure function of the content; remembering a digest between runs is the cache's job (`hf_relrep.utils.cache`).
"""

import hashlib
import os
from collections.abc import Iterator


CHUNK = 1 << 20
"""Bytes read at a time when hashing a file."""


def _chunks(path: str | os.PathLike) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's content (what the Hub lists for LFS files), read in chunks."""
    digest = hashlib.sha256()
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data``: ``sha1(b"blob <size>\\0" + data)``, what the Hub lists for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_git_blob_sha1(path: str | os.PathLike) -> str:
    """`git_blob_sha1` of a file's content, read in chunks."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


__all__ = ["CHUNK", "file_git_blob_sha1", "file_sha256", "git_blob_sha1"]
