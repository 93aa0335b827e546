"""Pooling: from a backbone's output to one latent per example.

Token and patch sequences ``[batch, seq, hidden]`` (text, vision transformers, audio frames) and convolutional feature
maps ``[batch, channels, height, width]`` (ConvNeXt, ResNet) both pool to ``[batch, hidden]``. ``"pooler"`` takes the
backbone's own pooled output instead (what `ConvNextForImageClassification` or `SwinForImageClassification` read).

Registry: `POOLING_MODES` (name → pooling function); adding a mode is one function decorated with `register_pooling`,
and ``RelativeEncoderConfig(pooling=...)`` accepts it at once.
"""

from collections.abc import Callable
from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutput

from ..errors import ConfigurationError
from ..utils.registry import Registry


Pooling = Callable[..., torch.Tensor]
#: Pooling modes by name: ``(outputs, attention_mask, *, prefix_tokens) → [batch, hidden]``.
POOLING_MODES: Registry[Pooling] = Registry("pooling")


def register_pooling(name: str) -> Callable[[Pooling], Pooling]:
    """A decorator that adds a pooling mode to `POOLING_MODES` under `name` (then ``pooling=name`` is a valid setting).

    The function receives ``(outputs, attention_mask, *, prefix_tokens)``: the backbone's output object (its
    ``last_hidden_state`` is ``[batch, seq, hidden]`` token states or ``[batch, channels, height, width]`` feature
    maps), the ``[batch, seq]`` mask (1 for real tokens, or ``None``: all real) and the number of leading non-content
    tokens; it returns ``[batch, hidden]``.

    Raises:
        ConfigurationError: `name` is taken.
    """
    return POOLING_MODES.register(name)


def _token_states(outputs: Any, mode: str) -> torch.Tensor:
    """The ``[batch, seq, hidden]`` token states of `outputs`; a `ConfigurationError` for feature maps."""
    hidden_states = outputs.last_hidden_state
    if hidden_states.dim() == 4:
        raise ConfigurationError(
            f"pooling={mode!r} needs a token sequence, but this backbone outputs feature maps "
            f"{tuple(hidden_states.shape)}; use pooling='mean' (global average) or 'max'."
        )
    return hidden_states


def _content(outputs: Any, attention_mask: torch.Tensor | None, prefix_tokens: int):
    """Token states and ``[batch, seq, 1]`` mask (in their dtype) without the `prefix_tokens` leading tokens."""
    hidden_states = outputs.last_hidden_state
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:2])
    hidden_states, attention_mask = hidden_states[:, prefix_tokens:], attention_mask[:, prefix_tokens:]
    return hidden_states, attention_mask.to(hidden_states.dtype).unsqueeze(-1)


@register_pooling("cls")
def cls_pooling(outputs: Any, attention_mask: torch.Tensor | None, *, prefix_tokens: int = 0) -> torch.Tensor:
    """The first real token (the paper, ViT): position 0 under right padding, after the pads under left padding."""
    hidden_states = _token_states(outputs, "cls")
    if attention_mask is None:
        return hidden_states[:, 0]
    first = (attention_mask.long() != 0).long().argmax(1)
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), first]


@register_pooling("mean")
def mean_pooling(outputs: Any, attention_mask: torch.Tensor | None, *, prefix_tokens: int = 0) -> torch.Tensor:
    """``Σ_t m_t h_t / max(Σ_t m_t, 1)`` over the content tokens (sentence-transformers, e5); global average pooling
    on feature maps."""
    if outputs.last_hidden_state.dim() == 4:
        return outputs.last_hidden_state.mean(dim=(2, 3))
    hidden_states, mask = _content(outputs, attention_mask, prefix_tokens)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp_min(1.0)


@register_pooling("max")
def max_pooling(outputs: Any, attention_mask: torch.Tensor | None, *, prefix_tokens: int = 0) -> torch.Tensor:
    """``max_t h_t`` over the real content tokens; global max pooling on feature maps."""
    if outputs.last_hidden_state.dim() == 4:
        return outputs.last_hidden_state.amax(dim=(2, 3))
    hidden_states, mask = _content(outputs, attention_mask, prefix_tokens)
    return hidden_states.masked_fill(mask == 0, torch.finfo(hidden_states.dtype).min).amax(1)


@register_pooling("last")
def last_pooling(outputs: Any, attention_mask: torch.Tensor | None, *, prefix_tokens: int = 0) -> torch.Tensor:
    """The last real token (decoder backbones): right padding ``[1 1 1 0 0]`` and left padding ``[0 0 1 1 1]``."""
    hidden_states = _token_states(outputs, "last")
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:2])
    real = attention_mask.long() != 0
    positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
    last = torch.where(real, positions, 0).amax(1)
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]


@register_pooling("pooler")
def pooler_output(outputs: Any, attention_mask: torch.Tensor | None, *, prefix_tokens: int = 0) -> torch.Tensor:
    """The backbone's own pooled output, flattened (what `ConvNextForImageClassification` or
    `SwinForImageClassification` read)."""
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is None:
        raise ConfigurationError(
            "pooling='pooler' reads the backbone's pooled output, but this backbone returns none; use 'cls' or 'mean'."
        )
    return pooled.flatten(1)


def pool_outputs(
    outputs: Any, attention_mask: torch.Tensor | None, mode: str, *, prefix_tokens: int = 0
) -> torch.Tensor:
    """Pool a backbone's output object with the `POOLING_MODES` entry `mode`.

    Args:
        outputs: the backbone's output (``last_hidden_state``, and ``pooler_output`` for ``"pooler"``).
        attention_mask: ``[batch, seq]`` with 1 for real tokens, 0 for padding; ``None`` means all tokens are real.
        mode: a name in `POOLING_MODES`: ``"cls"``, ``"mean"``, ``"max"``, ``"last"`` or ``"pooler"``.
        prefix_tokens: leading tokens that are not part of the content (a vision transformer's CLS and register
            tokens): left out of ``"mean"`` and ``"max"``, so that they average the patches only.

    Returns:
        ``[batch, hidden]`` pooled latents.
    """
    return POOLING_MODES[mode](outputs, attention_mask, prefix_tokens=prefix_tokens)


def pool(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, mode: str, *, prefix_tokens: int = 0
) -> torch.Tensor:
    """Pool a sequence of token states, or a feature map, into one vector per example (`pool_outputs` on a bare
    ``last_hidden_state``).

    Args:
        hidden_states: ``[batch, seq, hidden]`` last hidden state of the backbone, or ``[batch, channels, height,
            width]`` feature maps of a convolutional backbone.
        attention_mask: ``[batch, seq]`` with 1 for real tokens, 0 for padding; ``None`` means all tokens are real.
        mode: ``"cls"`` (first real token, as in the paper and ViT), ``"mean"`` (masked mean, what sentence-transformers
            and e5 use; global average pooling on feature maps), ``"max"`` (masked max; global max pooling on feature
            maps), ``"last"`` (last real token, for decoder backbones; correct under left and right padding), or any
            other name in `POOLING_MODES`.
        prefix_tokens: see `pool_outputs`.

    Returns:
        ``[batch, hidden]`` pooled latents.
    """
    return pool_outputs(
        BaseModelOutput(last_hidden_state=hidden_states), attention_mask, mode, prefix_tokens=prefix_tokens
    )


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


__all__ = ["POOLING_MODES", "backbone_output_size", "pool", "pool_outputs", "register_pooling"]
