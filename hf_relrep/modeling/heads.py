"""The trainable pieces around the relative step, built from a config: the adapter after pooling and the
classification head (their kinds are registered in `hf_relrep.relative.layers`)."""

import torch
from torch import nn

from ..configuration import RelativeEncoderConfig
from ..relative.layers import ADAPTERS, HEADS
from ..relative.pooling import backbone_output_size


def build_adapter(config: RelativeEncoderConfig) -> nn.Module:
    """The `ADAPTERS` entry ``config.adapter``, from the backbone's output size to ``config.adapter_size`` (default:
    the same size)."""
    hidden = backbone_output_size(config.backbone)
    return ADAPTERS[config.adapter](hidden, config.adapter_size or hidden)


class ClassificationHead(nn.Module):
    """The head side: dropout → the `HEADS` entry ``config.head`` (the paper: one Linear)."""

    def __init__(self, config: RelativeEncoderConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.layers = HEADS[config.head](config.head_input_size, config.num_labels, config.head_hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(self.dropout(features))
