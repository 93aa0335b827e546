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

import contextlib
import inspect
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import huggingface_hub
from huggingface_hub import HfApi
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.models.auto.auto_factory import _get_model_class

from ..errors import BackboneError, CorruptCheckpointError, RelRepError, SourceNotFoundError, UnsafeCheckpointError
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


def check_source(
    source: str | os.PathLike, what: str = "model", *, subfolder: str | None = None, require_config: bool = True
) -> None:
    """Refuse a local path that does not exist, a file where a checkpoint folder is expected, or a folder that holds
    no ``config.json`` (not a saved model).

    Raises:
        SourceNotFoundError: naming the path and what to pass instead.
    """
    if not is_local_path(source):
        return
    path = os.path.expanduser(os.fspath(source))
    if os.path.isdir(path):
        if require_config and not os.path.isfile(os.path.join(path, subfolder or "", "config.json")):
            raise SourceNotFoundError(
                f"The {what} folder {source} holds no config.json: it is not a saved model. Pass the folder that "
                "save_pretrained (or hf-relrep stitch) wrote, or a Hub id."
            )
        return
    if os.path.exists(path):
        raise SourceNotFoundError(
            f"The {what} {source} is a file; pass the folder that holds its config.json and weights (or a Hub id)."
        )
    raise SourceNotFoundError(
        f"The {what} folder {source} does not exist; check the path (a Hub id looks like 'namespace/name')."
    )


def check_loadable(source: str | os.PathLike, what: str = "model", *, allow_pickle: bool = False) -> None:
    """Before any work: a local `source` exists, is a model folder, and offers safetensors weights (or `allow_pickle`).

    Hub ids are checked when they are loaded.

    Raises:
        SourceNotFoundError: see `check_source`.
        UnsafeCheckpointError: a folder with pickle weights only, and `allow_pickle` is false.
    """
    check_source(source, what)
    if not allow_pickle and is_local_path(source) and offers_only_pickle(os.path.expanduser(os.fspath(source)), {}):
        raise UnsafeCheckpointError(
            f"The {what} {source} has no safetensors weights, only a pickle checkpoint. hf-relrep does not load "
            "pickles by default; pass use_safetensors=False (--allow-pickle on the command line) to opt in, only for "
            "sources you trust, or convert the checkpoint to safetensors."
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
    check_source(source, what, subfolder=kwargs.get("subfolder"))
    try:
        result = load(source, use_safetensors=True if use_safetensors is None else use_safetensors, **kwargs)
    except RelRepError:
        raise
    except (OSError, ValueError, SafetensorError) as error:
        if isinstance(error, OSError) and use_safetensors is None and offers_only_pickle(source, kwargs):
            raise UnsafeCheckpointError(
                f"The {what} {source} has no safetensors weights, only a pickle checkpoint. hf-relrep does not load "
                "pickles by default; pass use_safetensors=False (--allow-pickle on the command line) to opt in, only "
                "for sources you trust, or convert the checkpoint to safetensors."
            ) from error
        mapped = unreadable(source, what, error)
        if mapped is error:
            raise
        raise mapped from error
    verify_download(source, verify_checksums=verify_checksums, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
    return result


def unreadable(source: str | os.PathLike, what: str, error: BaseException) -> BaseException:
    """`error` from loading `source` as a typed error when the files are there but cannot be used: a
    `CorruptCheckpointError` (a `BackboneError` for a backbone). Other errors (a Hub error, a missing connection, a bad
    argument) are returned unchanged."""
    if isinstance(error, RelRepError) or not isinstance(error, (SafetensorError, OSError, ValueError)):
        return error
    if isinstance(error, ValueError) and "Unrecognized model" not in str(error):
        return error  # a bad argument, not a bad file
    if not isinstance(error, SafetensorError) and not is_local_path(source):
        return error  # a Hub error or a missing connection: said as it is
    message = " ".join(str(error).split())[:300]
    if "no file named" in message:
        reason = "it holds no weights (model.safetensors)"
        fix = "pass the folder that holds the weights, or save the model again"
    else:
        reason = f"its files cannot be read ({type(error).__name__}: {message})"
        fix = (
            "they are damaged, truncated or not a transformers checkpoint: save the model again (or, from the Hub, "
            "load it with force_download=True)"
        )
    if what == "backbone":
        return BackboneError(f"AutoModel cannot load the backbone {source}: {reason}; {fix}.")
    return CorruptCheckpointError(f"Cannot load the {what} {source}: {reason}; {fix}.")


def load_config(source: str | os.PathLike, *, what: str = "model", **kwargs: Any) -> PreTrainedConfig:
    """`AutoConfig.from_pretrained` with the loading rules' messages: a missing path or a damaged config is named.

    Raises:
        SourceNotFoundError: a local path that does not exist or holds no config.json.
        CorruptCheckpointError: a config.json that cannot be read (not JSON, no model type).
    """
    check_source(source, what, subfolder=kwargs.get("subfolder"))
    try:
        return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        mapped = unreadable(source, what, error)
        if mapped is error:
            raise
        raise mapped from error


class _DroppedPoolerReport(logging.Filter):
    """Drops transformers' load report when all it lists is the pooler we chose not to build.

    BERT-like checkpoints ship a pooling layer that hf-relrep does not use (it pools the token states itself), so
    their ``pooler.*`` weights are "UNEXPECTED" on purpose. A report that lists anything else (a missing or
    mismatched weight, another unexpected key) is a real problem and goes through untouched.
    """

    _ROW = re.compile(r"^\s*(\S+)\s*\|\s*([A-Z_]+)\s*\|")

    def filter(self, record: logging.LogRecord) -> bool:
        message = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # the report may be coloured
        if "LOAD REPORT" not in message:
            return True
        rows = [match.groups() for match in map(self._ROW.match, message.splitlines()) if match]
        rows = [(key, status) for key, status in rows if status != "STATUS"]
        on_purpose = rows and all(status == "UNEXPECTED" and key.startswith("pooler.") for key, status in rows)
        return not on_purpose


@contextlib.contextmanager
def _quiet_dropped_pooler() -> Iterator[None]:
    report_logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _DroppedPoolerReport()
    report_logger.addFilter(report_filter)
    try:
        yield
    finally:
        report_logger.removeFilter(report_filter)


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
    if config is None:
        config = load_config(source, what="backbone", **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
    init = {} if keep_pooler else without_pooler(config)
    with _quiet_dropped_pooler() if init else contextlib.nullcontext():
        return safe_from_pretrained(
            AutoModel.from_pretrained, source, use_safetensors=use_safetensors, verify_checksums=verify_checksums,
            what="backbone", config=config, **{**init, **kwargs},
        )  # fmt: skip


__all__ = [
    "PICKLE_SUFFIXES",
    "check_loadable",
    "check_source",
    "is_local_path",
    "load_backbone",
    "load_config",
    "offers_only_pickle",
    "safe_from_pretrained",
    "unreadable",
    "verify_download",
    "without_pooler",
]
