"""Outputs of the relative models."""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class RelativeModelOutput(ModelOutput):
    """Output of the encoder side.

    Args:
        latents: ``[batch, latent_size]`` the pooled (and adapted) latents z.
        relative: ``[batch, num_anchors]`` the relative representation (``None`` in absolute mode).
        anchor_latents: ``[num_anchors, latent_size]`` the anchor latents used for this batch.
        hidden_states, attentions: passed through from the backbone when asked for.
    """

    latents: torch.Tensor | None = None
    relative: torch.Tensor | None = None
    anchor_latents: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class RelativeSequenceClassifierOutput(ModelOutput):
    """Output of [`RelativeModelForSequenceClassification`].

    Args:
        loss: classification loss when `labels` are given.
        logits: ``[batch, num_labels]``.
        latents: ``[batch, latent_size]`` latents z (what densification "pre" acts on).
        relative: ``[batch, num_anchors]`` relative vectors (what densification "post" acts on); ``None`` in absolute
            mode.
        hidden_states, attentions: passed through from the backbone when asked for.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    relative: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
