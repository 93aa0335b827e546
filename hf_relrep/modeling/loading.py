"""Safe loading of every checkpoint the library reads: safetensors only, Hub downloads checked, local paths local.

The same three rules hold for relative models, stitched parts, backbones and the encoders of ``reproduce``:

- **safetensors only**, unless the caller passes ``use_safetensors=False`` (``--allow-pickle`` on the command line): a
  pickle checkpoint (``pytorch_model.bin``) runs arbitrary code when it is loaded. A source that offers only a pickle
  raises `UnsafeCheckpointError`, saying how to opt in.
- **checksums**: files downloaded from the Hub are compared with the checksums the Hub lists
  (`hf_relrep.hub.verify_cached_files`); a corrupted file raises `CorruptDownloadError` and leaves the cache.
- **a local path is local**: a path that does not exist raises `SourceNotFoundError`, instead of a Hub lookup that
  ends in "cannot connect" or "not a valid model identifier".
"""

import inspect
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import huggingface_hub
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.models.auto.auto_factory import _get_model_class

from ..errors import SourceNotFoundError, UnsafeCheckpointError
from ..hub import verify_cached_files


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
#: Hub ids look like ``name`` or ``namespace/name`` (no part starts or ends with "." or "-"); any other string is a
#: local path.
_HUB_PART = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"{_HUB_PART}(?:/{_HUB_PART})?")
_HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only")

T = TypeVar("T")


def offers_only_pickle(source: str | os.PathLike, kwargs: dict[str, Any]) -> bool:
    """Whether `source` (a folder or a Hub repo) has pickle weights and no safetensors weights."""
    if os.path.isdir(source):
        files = [name for _, _, names in os.walk(source) for name in names]
    else:
        try:
            files = HfApi().list_repo_files(str(source), revision=kwargs.get("revision"), token=kwargs.get("token"))
        except Exception:  # the original loading error is the one worth showing
            return False
    return not any(f.endswith(".safetensors") for f in files) and any(f.endswith(PICKLE_SUFFIXES) for f in files)


def without_pooler(backbone_config: PreTrainedConfig) -> dict[str, Any]:
    """`add_pooling_layer=False` for backbones that take it (BERT, RoBERTa, ...): we pool ourselves."""
    model_class = _get_model_class(backbone_config, AutoModel._model_mapping)
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class).parameters else {}


def is_local_path(source: str | os.PathLike) -> bool:
    """Whether `source` names a local path rather than a Hub id: a `Path`, an existing path, or a string that
    cannot be a Hub id (``./x``, ``/x``, ``~/x``, ``a/b/c``)."""
    if isinstance(source, os.PathLike) or os.path.exists(source):
        return True
    return _HUB_ID.fullmatch(str(source)) is None


def check_source(source: str | os.PathLike, what: str = "model") -> None:
    """Refuse a local path that does not exist, or that is a file where a checkpoint folder is expected.

    Raises:
        SourceNotFoundError: naming the path and what to pass instead.
    """
    if not is_local_path(source):
        return
    path = os.path.expanduser(os.fspath(source))
    if os.path.isdir(path):
        return
    if os.path.exists(path):
        raise SourceNotFoundError(
            f"The {what} {source} is a file; pass the folder that holds its config.json and weights (or a Hub id)."
        )
    raise SourceNotFoundError(
        f"The {what} folder {source} does not exist; check the path (a Hub id looks like 'namespace/name')."
    )


def verify_download(source: str | os.PathLike, *, verify_checksums: bool = True, **kwargs: Any) -> None:
    """Check a Hub source's cached files against the Hub's checksums (no-op for folders, offline, or when told not to).

    Raises:
        CorruptDownloadError: a cached file does not match; it has been removed from the cache.
    """
    offline = huggingface_hub.constants.HF_HUB_OFFLINE or kwargs.get("local_files_only")
    if verify_checksums and not offline and not os.path.isdir(source):
        verify_cached_files(
            str(source), revision=kwargs.get("revision"), token=kwargs.get("token"), cache_dir=kwargs.get("cache_dir")
        )


def safe_from_pretrained(
    load: Callable[..., T],
    source: str | os.PathLike,
    *,
    use_safetensors: bool | None = None,
    verify_checksums: bool = True,
    what: str = "model",
    **kwargs: Any,
) -> T:
    """``load(source, use_safetensors=..., **kwargs)`` (any ``from_pretrained``) under hf-relrep's loading rules.

    Args:
        load: e.g. ``AutoModel.from_pretrained``.
        source: a local folder or a Hub id.
        use_safetensors: `None` (the default) loads safetensors only and explains a pickle-only source; `False` opts
            in to pickle checkpoints (only for sources you trust); `True` as `None`, without the explanation.
        verify_checksums: check Hub downloads against the Hub's checksums.
        what: what `source` is, for messages (``"backbone"``, ``"encoder"``).
        **kwargs: passed to `load`.

    Raises:
        SourceNotFoundError: a local path that does not exist.
        UnsafeCheckpointError: `source` offers only pickle weights and `use_safetensors` is not False.
        CorruptDownloadError: a downloaded file does not match the Hub's checksum.
    """
    check_source(source, what)
    try:
        result = load(source, use_safetensors=True if use_safetensors is None else use_safetensors, **kwargs)
    except OSError as error:
        if use_safetensors is None and offers_only_pickle(source, kwargs):
            raise UnsafeCheckpointError(
                f"The {what} {source} has no safetensors weights, only a pickle checkpoint. hf-relrep does not load "
                "pickles by default; pass use_safetensors=False (--allow-pickle on the command line) to opt in, only "
                "for sources you trust, or convert the checkpoint to safetensors."
            ) from error
        raise
    verify_download(source, verify_checksums=verify_checksums, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
    return result


def load_backbone(
    source: str | os.PathLike,
    *,
    config: PreTrainedConfig | None = None,
    keep_pooler: bool = False,
    use_safetensors: bool | None = None,
    verify_checksums: bool = True,
    **kwargs: Any,
) -> PreTrainedModel:
    """A pretrained backbone (`AutoModel`) under the loading rules of `safe_from_pretrained`.

    Args:
        source: a local folder or a Hub id.
        config: its config, when already loaded.
        keep_pooler: keep the pooling layer of BERT-like models (by default it is not built: hf-relrep pools itself).
        use_safetensors, verify_checksums: see `safe_from_pretrained`.
        **kwargs: passed to `AutoModel.from_pretrained` (``revision``, ``token``, ``dtype``, ...).

    Example:
        >>> from hf_relrep.modeling.loading import load_backbone
        >>> backbone = load_backbone("path/or/hub-id")  # doctest: +SKIP
    """
    check_source(source, "backbone")
    if config is None:
        config = AutoConfig.from_pretrained(source, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
    init = {} if keep_pooler else without_pooler(config)
    return safe_from_pretrained(
        AutoModel.from_pretrained, source, use_safetensors=use_safetensors, verify_checksums=verify_checksums,
        what="backbone", config=config, **{**init, **kwargs},
    )  # fmt: skip


__all__ = [
    "PICKLE_SUFFIXES",
    "check_source",
    "is_local_path",
    "load_backbone",
    "offers_only_pickle",
    "safe_from_pretrained",
    "verify_download",
    "without_pooler",
]
