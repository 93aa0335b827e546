"""Integrity of downloaded files: the check of a Hub model's cached files against the checksums the Hub lists.

huggingface_hub checks a download's size, not its content: a file with the right length and wrong bytes is accepted.
`verify_cached_files` compares cached files with the checksums the Hub lists for them.
"""

import os

from huggingface_hub import HfApi, try_to_load_from_cache

from ..errors import CorruptDownloadError
from ..utils.hashing import file_git_blob_sha1, file_sha256


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
