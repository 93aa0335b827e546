"""The trainable layers around the relative step, by name: the adapter after pooling and the classification head.

- `ADAPTERS`: ``(in_size, out_size) → module`` mapping a pooled backbone output to the latent z: ``"none"`` (the
  identity), ``"linear"`` or ``"mlp"`` (Linear-GELU-Linear).
- `HEADS`: ``(in_size, num_labels, hidden_size) → module`` mapping what the head reads (the relative vector, or the
  latent in absolute mode) to logits: ``"linear"`` (the paper: one Linear) or ``"mlp"`` (Linear-GELU-Linear;
  `hidden_size` defaults to `in_size`).

Adding one is one registration; ``RelativeEncoderConfig(adapter=..., head=...)`` accepts it at once.
"""

from collections.abc import Callable

from torch import nn

from ..utils.registry import Registry


AdapterBuilder = Callable[[int, int], nn.Module]
HeadBuilder = Callable[[int, int, int | None], nn.Module]
ADAPTERS: Registry[AdapterBuilder] = Registry("adapter")
HEADS: Registry[HeadBuilder] = Registry("head")


def keep_default_init(layer: nn.Linear) -> nn.Linear:
    """Mark a Linear to keep PyTorch's Kaiming-uniform init when the model initializes its weights.

    With transformers' std 0.02 an adapter's GELU would start in its near-linear range, and two adapters would differ
    by little more than a linear map (`RelativePreTrainedModel._init_weights` reads the mark).
    """
    layer._hf_relrep_default_init = True
    return layer


@ADAPTERS.register("none")
def no_adapter(in_size: int, out_size: int) -> nn.Module:
    """The identity: the latent is the pooled backbone output."""
    return nn.Identity()


@ADAPTERS.register("linear")
def linear_adapter(in_size: int, out_size: int) -> nn.Module:
    """``z = W h + b``."""
    return keep_default_init(nn.Linear(in_size, out_size))


@ADAPTERS.register("mlp")
def mlp_adapter(in_size: int, out_size: int) -> nn.Module:
    """``z = W₂ GELU(W₁ h + b₁) + b₂``, the hidden layer as wide as the input."""
    return nn.Sequential(
        keep_default_init(nn.Linear(in_size, in_size)), nn.GELU(), keep_default_init(nn.Linear(in_size, out_size))
    )


@HEADS.register("linear")
def linear_head(in_size: int, num_labels: int, hidden_size: int | None = None) -> nn.Module:
    """One Linear (the paper)."""
    return nn.Linear(in_size, num_labels)


@HEADS.register("mlp")
def mlp_head(in_size: int, num_labels: int, hidden_size: int | None = None) -> nn.Module:
    """Linear → GELU → Linear, the hidden layer `hidden_size` wide (default: `in_size`)."""
    hidden = hidden_size or in_size
    return nn.Sequential(nn.Linear(in_size, hidden), nn.GELU(), nn.Linear(hidden, num_labels))


__all__ = ["ADAPTERS", "HEADS", "keep_default_init"]
