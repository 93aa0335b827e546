"""Two sides' latents on the same parallel anchors: what a translation is fitted on and what `compare_spaces` and
``report=True`` compare.

Parallel anchors are one list of texts for both models or a pair of lists (anchor i of one the counterpart of anchor
i of the other); each model embeds its own side with its own tokenizer (`text_latents`). Relative models carry their
anchors: `anchor_latent_pair` embeds those.
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel

from ..configuration import RelativeEncoderConfig
from ..errors import AnchorError, StitchingError
from ..modeling import RelativeClassifierBase
from ..modeling.translated import ABSOLUTE_KINDS, RelativeLatents, absolute_kind
from .sources import ModelSource


ParallelAnchors = Sequence[str] | tuple[Sequence[str], Sequence[str]]
"""Anchor texts for two models: one list for both, or a pair (texts for the first, texts for the second)."""


def parallel_texts(anchors: ParallelAnchors) -> tuple[list[str], list[str]]:
    """``(texts for the first model, texts for the second)``: one list for both, or a pair of parallel lists.

    Raises:
        AnchorError: one bare string, or two lists of different lengths.
    """
    if isinstance(anchors, str):
        raise AnchorError("anchors is one string; pass a list of anchor texts, or a pair (texts_a, texts_b).")
    if isinstance(anchors, tuple) and len(anchors) == 2 and not isinstance(anchors[0], str):
        first, second = list(anchors[0]), list(anchors[1])
    else:
        first = second = list(anchors)
    if len(first) != len(second):
        raise AnchorError(
            f"{len(first)} and {len(second)} anchor texts: anchor i of one model must be the counterpart of anchor i "
            "of the other (the same sentence, or its translation)."
        )
    return first, second


def parallel_fingerprint(first: list[str], second: list[str]) -> str:
    """``sha256`` of the ordered (first, second) text pairs."""
    payload = json.dumps(list(zip(first, second, strict=True)), ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def resolve_tokenizer(model: PreTrainedModel, source: ModelSource, given: Any, *, revision: str | None, token) -> Any:
    """The tokenizer that embeds anchor texts for `model`: `given`, the model's own, or one saved with its source or
    its base model.

    Raises:
        StitchingError: none of these has a tokenizer.
    """
    if given is not None:
        return given
    if getattr(model, "processor", None) is not None:
        return model.processor
    candidates = [] if isinstance(source, PreTrainedModel) else [(source, revision)]
    for name in (getattr(model.config, "base_model", None), getattr(model.config, "name_or_path", None)):
        if name:
            candidates.append((name, None))
    for candidate, candidate_revision in candidates:
        try:
            return AutoTokenizer.from_pretrained(candidate, revision=candidate_revision, token=token)
        except (OSError, ValueError):
            continue
    raise StitchingError(
        f"No tokenizer found for the {type(model).__name__} (looked at {[c for c, _ in candidates]}): pass "
        "encoder_tokenizer= / head_tokenizer= (for compare_spaces, tokenizers=(a, b)), or anchor_latents=."
    )


def latent_encoder(model: PreTrainedModel) -> nn.Module:
    """The module that gives `model`'s latents (ours: the encoder side, relative or absolute)."""
    if isinstance(model, RelativeClassifierBase):
        return RelativeLatents(model.encoder)
    return ABSOLUTE_KINDS[absolute_kind(model)].encoder_of(model)


def text_settings(model: nn.Module, tokenizer: Any) -> tuple[str, int]:
    """``(prefix, max_length)`` for embedding texts with `model`: ours from its config, others the backbone's limit."""
    if isinstance(model.config, RelativeEncoderConfig):
        return model.config.anchor_text_prefix, model.config.anchor_max_length
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000]
    return "", min([512, *limits])


@torch.inference_mode()
def embed_with(
    encoder: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    prefix: str = "",
    max_length: int = 128,
    batch_size: int = 32,
) -> torch.Tensor:
    """``[len(texts), d]`` latents of `texts` from an encoder half, in eval mode, on the CPU.

    Every submodule's train/eval mode is restored afterwards (the half may wrap a model the caller still uses).
    """
    device = next(encoder.parameters()).device
    modes = [(module, module.training) for module in encoder.modules()]
    encoder.eval()
    try:
        parts = []
        for start in range(0, len(texts), batch_size):
            chunk = [prefix + text for text in texts[start : start + batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            parts.append(encoder(**{k: v.to(device) for k, v in batch.items()}).float().cpu())
    finally:
        for module, mode in modes:
            module.training = mode
    return torch.cat(parts)


def text_latents(
    model: PreTrainedModel, source: ModelSource, texts: list[str], tokenizer: Any, *, revision: str | None, token
) -> tuple[torch.Tensor, Any]:
    """``(latents [len(texts), d], the tokenizer used)``: `model`'s latents of `texts` (`resolve_tokenizer` finds
    the tokenizer when `tokenizer` is ``None``)."""
    tokenizer = resolve_tokenizer(model, source, tokenizer, revision=revision, token=token)
    prefix, max_length = text_settings(model, tokenizer)
    return embed_with(latent_encoder(model), tokenizer, texts, prefix=prefix, max_length=max_length), tokenizer


def anchor_latent_pair(
    encoder_model: RelativeClassifierBase, head_model: RelativeClassifierBase
) -> tuple[torch.Tensor, torch.Tensor]:
    """The anchor latents of two relative models' encoder sides, in eval mode, without gradient."""
    latents = []
    for model in (encoder_model, head_model):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                latents.append(model.encoder.anchor_latents().float().cpu())
        finally:
            model.train(was_training)
    return tuple(latents)


__all__ = [
    "ParallelAnchors",
    "anchor_latent_pair",
    "embed_with",
    "latent_encoder",
    "parallel_fingerprint",
    "parallel_texts",
    "resolve_tokenizer",
    "text_latents",
    "text_settings",
]
