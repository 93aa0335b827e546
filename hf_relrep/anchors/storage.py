"""Raw anchors that do not fit in a config (images, audio), stored beside the weights in ``anchors.safetensors``.

The file holds the anchors as they were given, compactly: all anchors concatenated into one flat tensor (``uint8``
pixels, ``float32`` samples) plus a ``shapes`` tensor with one row per anchor. Its metadata names the modality, the
fingerprint over the raw content (the one in ``config.anchor_fingerprint``) and the modality's options (the sampling
rate of audio anchors). The saved processor turns them back into backbone inputs on load.
"""

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import AnchorError


ANCHORS_FILE = "anchors.safetensors"
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder")


def save_anchor_arrays(directory: str | os.PathLike, arrays: list[np.ndarray], metadata: dict[str, str]) -> str:
    """Write `arrays` (one dtype, any shapes of one rank) to ``directory/anchors.safetensors``; atomic (a temporary
    sibling, then a rename). Returns the path."""
    flat = np.concatenate([np.ascontiguousarray(array).reshape(-1) for array in arrays])
    shapes = np.asarray([array.shape for array in arrays], dtype=np.int64)
    tensors = {"values": torch.from_numpy(flat), "shapes": torch.from_numpy(shapes)}
    path = os.path.join(directory, ANCHORS_FILE)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".anchors-", suffix=".tmp")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata={"format": "pt", **metadata})
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load_anchor_arrays(path: str | os.PathLike) -> tuple[list[np.ndarray], dict[str, str]]:
    """The arrays and metadata written by `save_anchor_arrays`."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        values, shapes = handle.get_tensor("values").numpy(), handle.get_tensor("shapes").numpy()
    arrays, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        if offset + size > values.size:
            raise AnchorError(f"{path} is truncated: its shapes list more values than it holds. Save the model again.")
        arrays.append(values[offset : offset + size].reshape(tuple(int(n) for n in shape)))
        offset += size
    return arrays, metadata


def resolve_anchors_file(source: str | os.PathLike, hub_kwargs: dict[str, Any]) -> str | None:
    """Path of the anchors file of a local folder or a Hub repository (downloaded), or None when it has none."""
    if os.path.isdir(source):
        path = os.path.join(source, hub_kwargs.get("subfolder") or "", ANCHORS_FILE)
        return path if os.path.isfile(path) else None
    kwargs = {key: hub_kwargs[key] for key in HUB_KWARGS if hub_kwargs.get(key) is not None}
    try:
        return hf_hub_download(str(source), ANCHORS_FILE, **kwargs)
    except EntryNotFoundError:
        return None


def read_anchor_store(
    source: str | os.PathLike, hub_kwargs: dict[str, Any], config: Any, fingerprint: Callable[[list[Any]], str]
) -> tuple[list[np.ndarray], dict[str, str]]:
    """The raw anchors saved with a model (folder or Hub id), checked against its config.

    Raises:
        AnchorError: no anchors file, or anchors whose count or `fingerprint` differ from the config's.
    """
    path = resolve_anchors_file(source, hub_kwargs)
    if path is None:
        raise AnchorError(
            f"{source} has no {ANCHORS_FILE}, which holds this model's {config.num_anchors} anchors; save the model "
            "again with save_pretrained, or call model.set_anchors(anchors, processor) with the original anchors."
        )
    anchors, metadata = load_anchor_arrays(path)
    if len(anchors) != config.num_anchors or fingerprint(anchors) != config.anchor_fingerprint:
        raise AnchorError(
            f"The anchors in {path} do not match the model's config (anchor_fingerprint): the file was edited or "
            "belongs to another model. Restore the original file, or call model.set_anchors(anchors, processor) "
            "with the anchors the model should use."
        )
    return anchors, metadata


__all__ = [
    "ANCHORS_FILE",
    "HUB_KWARGS",
    "load_anchor_arrays",
    "read_anchor_store",
    "resolve_anchors_file",
    "save_anchor_arrays",
]
