"""Pooling: from a backbone's token states ``[batch, seq, hidden]`` to one latent ``[batch, hidden]``."""

import torch

from .errors import ConfigurationError


POOLING_MODES = ("cls", "mean", "max", "last")


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Pool token states into one vector per sequence.

    Args:
        hidden_states: ``[batch, seq, hidden]`` last hidden state of the backbone.
        attention_mask: ``[batch, seq]`` with 1 for real tokens, 0 for padding; ``None`` means all tokens are real.
        mode: ``"cls"`` (first token, as in the paper), ``"mean"`` (masked mean, what sentence-transformers and e5
            use), ``"max"`` (masked max) or ``"last"`` (last real token, for decoder backbones).

    Returns:
        ``[batch, hidden]`` pooled latents.
    """
    if mode == "cls":
        return hidden_states[:, 0]
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:2])
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    if mode == "mean":
        return (hidden_states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if mode == "max":
        return hidden_states.masked_fill(mask == 0, torch.finfo(hidden_states.dtype).min).amax(1)
    if mode == "last":
        last = attention_mask.long().sum(1).clamp_min(1) - 1
        return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]
    raise ConfigurationError(f"Unknown pooling {mode!r}; choose one of {', '.join(POOLING_MODES)}.")
