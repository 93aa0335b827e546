"""Integrity of downloaded files: git blob and LFS checksums, and the check of a Hub model's cached files.

huggingface_hub checks a download's size, not its content: a file with the right length and wrong bytes is accepted.
`verify_cached_files` compares cached files with the checksums the Hub lists for them.
"""

import hashlib
import os

from huggingface_hub import HfApi, try_to_load_from_cache

from ..errors import CorruptDownloadError


_CHUNK = 1 << 20


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data``: ``sha1(b"blob <size>\\0" + data)``, what the Hub lists for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_git_blob_sha1(path: str | os.PathLike) -> str:
    """`git_blob_sha1` of a file's content, read in chunks."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's content (what the Hub lists for LFS files), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cached_files(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    suffixes: tuple[str, ...] = (".safetensors", ".json"),
) -> list[str]:
    """Check the cached files of a Hub model against the checksums the Hub lists for them.

    huggingface_hub checks a download's size, not its content: a file with the right length and wrong bytes is
    accepted. This compares every cached file ending in one of `suffixes` with the Hub's LFS sha256 or git blob sha1.
    A file that does not match is removed from the cache (so the next load downloads it again) and reported.

    Returns:
        The files checked.

    Raises:
        CorruptDownloadError: a cached file does not match; it has been removed from the cache.
    """
    info = HfApi().model_info(repo_id, revision=revision, token=token, files_metadata=True)
    checked = []
    for sibling in info.siblings or []:
        if not sibling.rfilename.endswith(suffixes):
            continue
        path = try_to_load_from_cache(repo_id, sibling.rfilename, cache_dir=cache_dir, revision=info.sha)
        if not isinstance(path, str):
            continue  # not downloaded: nothing to check
        if sibling.lfs is not None:
            expected, actual = sibling.lfs.sha256, file_sha256(path)
        elif sibling.blob_id:
            expected, actual = sibling.blob_id, file_git_blob_sha1(path)
        else:
            continue
        if expected != actual:
            real = os.path.realpath(path)
            for stale in {path, real}:
                if os.path.lexists(stale):
                    os.remove(stale)
            raise CorruptDownloadError(
                f"{sibling.rfilename} of {repo_id}@{info.sha[:12]} does not match the Hub's checksum (a corrupted "
                "download); it was removed from the cache. Load the model again to download it anew."
            )
        checked.append(sibling.rfilename)
    return checked
