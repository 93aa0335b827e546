"""Predicted class ids of a classifier: from texts (`predict`) or from precomputed model inputs (`predict_features`)."""

from collections.abc import Sequence

import torch

from ..errors import ConfigurationError
from .batches import feature_batches, feature_columns, run_batches, text_batches


def predict(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    prefix: str = "",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[int]:
    """Predicted class ids of a sequence classifier on `texts`, in batches of consecutive texts.

    Args:
        model: any `AutoModelForSequenceClassification` model (run in eval mode; its mode is restored).
        tokenizer: its tokenizer.
        texts: the inputs.
        batch_size: texts per forward pass.
        max_length: truncation length; `None` uses the tokenizer's, capped by the backbone's position embeddings.
        prefix: prepended to every text (e5 encoders expect ``"passage: "``; relative models store theirs in
            ``config.anchor_text_prefix``).
        device: move the model there first; `None` leaves it where it is.
        progress: show a tqdm bar on stderr.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be ≥ 1, got {batch_size}.")
    if device is not None:
        model = model.to(device)
    if max_length is None:
        max_length = _max_input_length(model, tokenizer)
    batches = text_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length, prefix=prefix)
    labels = run_batches(model, batches, _argmax, num_rows=len(texts), progress=progress, description="evaluate")
    return labels.tolist()


def predict_features(
    model: torch.nn.Module, features: torch.Tensor | dict[str, torch.Tensor], *, batch_size: int = 512
) -> list[int]:
    """Predicted class ids of a relative classifier from cached pooled backbone outputs (``backbone_features``), or
    from a dict of precomputed model inputs (e.g. ``inputs_embeds`` and ``attention_mask``)."""
    count = len(next(iter(feature_columns(features).values())))
    return run_batches(model, feature_batches(features, batch_size=batch_size), _argmax, num_rows=count).tolist()


def _argmax(output, inputs) -> torch.Tensor:
    return output.logits.argmax(-1)


def _max_input_length(model: torch.nn.Module, tokenizer) -> int | None:
    config = model.config
    backbone = getattr(config, "backbone", None) or config
    limits = [getattr(backbone, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000]
    return min(limits) if limits else None


__all__ = ["predict", "predict_features"]
