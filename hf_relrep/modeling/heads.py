"""The trainable pieces around the relative step: the adapter after pooling and the classification head."""

import torch
from torch import nn

from ..configuration import RelativeEncoderConfig
from ..relative.pooling import backbone_output_size


def build_adapter(config: RelativeEncoderConfig) -> nn.Module:
    hidden = backbone_output_size(config.backbone)
    if config.adapter == "none":
        return nn.Identity()
    out = config.adapter_size or hidden
    if config.adapter == "linear":
        layers = [nn.Linear(hidden, out)]
    else:
        layers = [nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out)]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            layer._hf_relrep_default_init = True
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class ClassificationHead(nn.Module):
    """The head side: dropout → Linear (the paper), or dropout → Linear → GELU → Linear."""

    def __init__(self, config: RelativeEncoderConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        in_size, num_labels = config.head_input_size, config.num_labels
        if config.head == "linear":
            self.layers = nn.Linear(in_size, num_labels)
        else:
            hidden = config.head_hidden_size or in_size
            self.layers = nn.Sequential(nn.Linear(in_size, hidden), nn.GELU(), nn.Linear(hidden, num_labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(self.dropout(features))
