"""The identity of an anchor set: its fingerprint, how many anchors a relative representation needs, and the check
that a loaded model still holds the anchors it was saved with.

Anchor i of one model is the counterpart of anchor i of another: a head reads similarities to *these* anchors, in
*this* order. `anchor_fingerprint` names an exact, ordered anchor set; `check_anchor_identity` refuses a loaded model
whose anchors no longer match the fingerprint saved in its config.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import AnchorError


#: One anchor gives a constant relative vector: a relative representation needs at least this many.
MIN_ANCHORS = 2


def check_anchor_count(count: int, *, fix: str = "pass more anchors") -> None:
    """Refuse fewer than `MIN_ANCHORS` anchors: one anchor gives a constant relative vector.

    Raises:
        AnchorError: naming the count and `fix`, what the caller can do about it.
    """
    if count < MIN_ANCHORS:
        raise AnchorError(f"A relative representation needs at least {MIN_ANCHORS} anchors, got {count}; {fix}.")


def tensor_bytes(tensor: Any) -> tuple[str, bytes]:
    """``(dtype|shape|, bytes)`` of a tensor or array, on the CPU, in C order: what a fingerprint hashes."""
    array = np.ascontiguousarray(tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor)
    return f"{array.dtype.str}|{','.join(map(str, array.shape))}|", array.tobytes()


def anchor_fingerprint(raw: Sequence[Any], token_ids: Any = None) -> str:
    """A stable identifier of an exact, ordered anchor set: the raw anchors and, when given, what the model stores.

    - `raw` texts: ``sha256`` of their JSON encoding; raw arrays (images, audio): ``sha256`` over each one's dtype,
      shape and bytes.
    - With `token_ids` (a tensor, or a sequence or mapping of tensors: for text, the stored ``anchor_input_ids`` and
      ``anchor_attention_mask``), the fingerprint covers them too: ``sha256("hf-relrep/anchors+ids" ‖ raw fingerprint
      ‖ dtype, shape and bytes of each tensor)``. Editing the texts in config.json, or the ids in the weights, then
      no longer matches the saved ``config.anchor_fingerprint`` (checked when the model is loaded).

    Args:
        raw: the anchors as given: a list of strings, or of arrays/tensors.
        token_ids: what the model derived from them and stores (token ids, attention mask), or None.

    Returns:
        ``"sha256:<64 hex digits>"``.
    """
    if isinstance(raw, (str, bytes)):
        raise AnchorError("The anchors are one string; pass a list of anchors (e.g. anchor_texts=[text1, text2]).")
    raw = list(raw)
    if all(isinstance(item, str) for item in raw):
        digest = hashlib.sha256(json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    else:
        digest = hashlib.sha256()
        for item in raw:
            header, payload = tensor_bytes(item)
            digest.update(header.encode())
            digest.update(payload)
    fingerprint = "sha256:" + digest.hexdigest()
    if token_ids is None:
        return fingerprint
    if isinstance(token_ids, Mapping):
        token_ids = [token_ids[key] for key in sorted(token_ids)]
    elif isinstance(token_ids, (torch.Tensor, np.ndarray)):
        token_ids = [token_ids]
    digest = hashlib.sha256(b"hf-relrep/anchors+ids\0" + fingerprint.encode())
    for tensor in token_ids:
        header, payload = tensor_bytes(tensor)
        digest.update(header.encode())
        digest.update(payload)
    return "sha256:" + digest.hexdigest()


def check_anchor_identity(model: torch.nn.Module) -> None:
    """Refuse a loaded model whose anchors (texts in config.json, token ids in the weights) are not the saved ones.

    Every submodule that holds anchors answers ``current_anchor_fingerprint()`` (the fingerprint of what it holds
    now, or None); it must equal its ``config.anchor_fingerprint``, which covers the raw anchors and the stored token
    ids (`anchor_fingerprint`). A fingerprint of the texts alone (written by hf-relrep 0.1) is accepted and brought up
    to date.

    Raises:
        AnchorError: the anchors were edited after saving, saying how to re-tokenize them.
    """
    for module in model.modules():
        stored = getattr(getattr(module, "config", None), "anchor_fingerprint", None)
        hook = getattr(module, "current_anchor_fingerprint", None)
        current = hook() if callable(hook) else None
        if stored is None or current is None or stored == current:
            continue
        texts = module.config.anchor_texts
        if texts is not None and stored == anchor_fingerprint(texts):
            module.config.anchor_fingerprint = current  # hf-relrep 0.1: texts only; the ids come with the weights
            continue
        raise AnchorError(
            "The anchors do not match the saved anchor_fingerprint: config.json's anchor_texts or the anchor token ids "
            "in the weights were changed after saving, so the head would read similarities to other anchors. Restore "
            "the original files, or re-tokenize the anchors: model.encoder.set_anchors(model.config.anchor_texts, "
            "tokenizer), then train (or at least re-evaluate) the head and save again."
        )


__all__ = ["MIN_ANCHORS", "anchor_fingerprint", "check_anchor_count", "check_anchor_identity", "tensor_bytes"]
