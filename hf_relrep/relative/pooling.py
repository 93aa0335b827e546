"""Pooling: from a backbone's output to one latent per example.

Token and patch sequences ``[batch, seq, hidden]`` (text, vision transformers, audio frames) and convolutional feature
maps ``[batch, channels, height, width]`` (ConvNeXt, ResNet) both pool to ``[batch, hidden]``. ``"pooler"`` takes the
backbone's own pooled output instead (what `ConvNextForImageClassification` or `SwinForImageClassification` read).
"""

from typing import Any

import torch

from ..errors import ConfigurationError


POOLING_MODES = ("cls", "mean", "max", "last", "pooler")


def pool(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, mode: str, *, prefix_tokens: int = 0
) -> torch.Tensor:
    """Pool a sequence of token states, or a feature map, into one vector per example.

    Args:
        hidden_states: ``[batch, seq, hidden]`` last hidden state of the backbone, or ``[batch, channels, height,
            width]`` feature maps of a convolutional backbone.
        attention_mask: ``[batch, seq]`` with 1 for real tokens, 0 for padding; ``None`` means all tokens are real.
        mode: ``"cls"`` (first real token, as in the paper and ViT), ``"mean"`` (masked mean, what sentence-transformers and
            e5 use; global average pooling on feature maps), ``"max"`` (masked max; global max pooling on feature
            maps) or ``"last"`` (last real token, for decoder backbones; correct under left and right padding).
        prefix_tokens: leading tokens that are not part of the content (a vision transformer's CLS and register
            tokens): left out of ``"mean"`` and ``"max"``, so that they average the patches only.

    Returns:
        ``[batch, hidden]`` pooled latents.
    """
    if hidden_states.dim() == 4:
        if mode == "mean":
            return hidden_states.mean(dim=(2, 3))
        if mode == "max":
            return hidden_states.amax(dim=(2, 3))
        raise ConfigurationError(
            f"pooling={mode!r} needs a token sequence, but this backbone outputs feature maps "
            f"{tuple(hidden_states.shape)}; use pooling='mean' (global average) or 'max'."
        )
    if mode == "cls" and attention_mask is None:
        return hidden_states[:, 0]
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:2])
    if mode == "cls":  # the first real token: position 0 under right padding, after the pads under left padding
        first = (attention_mask.long() != 0).long().argmax(1)
        return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), first]
    if mode == "last":
        # The last position holding a real token: right padding ([1 1 1 0 0]) and left padding ([0 0 1 1 1]) alike.
        real = attention_mask.long() != 0
        positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
        last = torch.where(real, positions, 0).amax(1)
        return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]
    hidden_states, attention_mask = hidden_states[:, prefix_tokens:], attention_mask[:, prefix_tokens:]
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    if mode == "mean":
        return (hidden_states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if mode == "max":
        return hidden_states.masked_fill(mask == 0, torch.finfo(hidden_states.dtype).min).amax(1)
    raise ConfigurationError(f"Unknown pooling {mode!r}; choose one of {', '.join(POOLING_MODES)}.")


def pool_outputs(
    outputs: Any, attention_mask: torch.Tensor | None, mode: str, *, prefix_tokens: int = 0
) -> torch.Tensor:
    """Pool a backbone's output object: its ``pooler_output`` for ``"pooler"``, else `pool` on ``last_hidden_state``."""
    if mode == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ConfigurationError(
                "pooling='pooler' reads the backbone's pooled output, but this backbone returns none; use 'cls' or "
                "'mean'."
            )
        return pooled.flatten(1)
    return pool(outputs.last_hidden_state, attention_mask, mode, prefix_tokens=prefix_tokens)


def backbone_output_size(backbone_config: Any) -> int:
    """Size of one pooled backbone output: ``hidden_size``, the last stage of ``hidden_sizes`` (ConvNeXt, ResNet), or
    ``d_model`` (T5, BART, Whisper)."""
    for name in ("hidden_size", "d_model"):
        value = getattr(backbone_config, name, None)
        if isinstance(value, int):
            return value
    sizes = getattr(backbone_config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise ConfigurationError(
        f"Cannot tell the output size of a {type(backbone_config).__name__}: it has no hidden_size, d_model or "
        "hidden_sizes."
    )


__all__ = ["POOLING_MODES", "backbone_output_size", "pool", "pool_outputs"]
