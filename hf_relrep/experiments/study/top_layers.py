"""Fine-tuning the top transformer layers of a backbone on cached hidden states of the layer below.

When only the top ``k`` layers of an encoder train, everything below them computes the same thing at every step. So
the hidden states that enter layer ``L − k + 1`` are computed once per text (`hidden_states_below`), and the model
that trains is the backbone cut to its top ``k`` layers (`top_layers`), whose embedding module passes
``inputs_embeds`` through unchanged. A step then costs ``k / L`` of a full forward and backward, with the same
gradients as fine-tuning those layers in the whole model (the lower layers are frozen either way; dropout aside,
the cached states are what the frozen layers would compute again).
"""

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ConfigurationError
from ...evaluation.batches import length_sorted_batches
from ..reproduce.data import LanguageData
from ..reproduce.features import LanguageSetup


class PassThroughEmbeddings(nn.Module):
    """Stands in for a transformer's embedding module: returns ``inputs_embeds`` as they are (the cached states)."""

    def forward(self, inputs_embeds: torch.Tensor | None = None, **unused) -> torch.Tensor:
        if inputs_embeds is None:
            raise ConfigurationError(
                "This backbone starts above its lower layers: feed it inputs_embeds (hidden states of the layer below "
                "its first one), not token ids."
            )
        return inputs_embeds


def layer_stack(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's list of transformer layers (``encoder.layer`` of BERT-like models).

    Raises:
        ConfigurationError: none found.
    """
    layers = next((m for name, m in backbone.named_modules() if name.endswith("encoder.layer")), None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigurationError(
            f"Cannot find the transformer layers (encoder.layer) of {type(backbone).__name__}; training its top "
            "layers on cached hidden states works on BERT-like encoders."
        )
    return layers


def top_layers(backbone: nn.Module, count: int) -> nn.Module:
    """A trainable copy of `backbone` that keeps only its top `count` layers and reads their input hidden states.

    Raises:
        ConfigurationError: `count` is not between 1 and the number of layers, or the layers are not found.
    """
    total = len(layer_stack(backbone))
    if not 1 <= count <= total:
        raise ConfigurationError(f"Can train the top 1..{total} layers of this backbone, not {count}.")
    upper = copy.deepcopy(backbone)
    layers = layer_stack(upper)
    del layers[: total - count]  # the top layers only
    for index, layer in enumerate(layers):  # layers that know their index (attention caches) count from 0 again
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    upper.embeddings = PassThroughEmbeddings()
    upper.config.num_hidden_layers = count
    upper.requires_grad_(True)
    return upper


def hidden_states_below(
    backbone: nn.Module, tokenizer, texts: Sequence[str], count: int, *, prefix: str, max_length: int,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Inputs of the top `count` layers for each text: ``inputs_embeds [N, T, H]`` and ``attention_mask [N, T]``.

    ``T`` is the longest tokenized text (at most `max_length`); shorter rows are zero-padded, and the mask hides the
    padding as the tokenizer's would.
    """
    total = len(layer_stack(backbone))
    batches = list(
        length_sorted_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length, prefix=prefix)
    )
    width = max((inputs["input_ids"].shape[1] for _, inputs in batches), default=1)
    hidden = torch.zeros(len(texts), width, backbone.config.hidden_size)
    mask = torch.zeros(len(texts), width, dtype=torch.long)
    was_training = backbone.training
    backbone.eval()
    with torch.inference_mode():
        for rows, inputs in batches:
            inputs = {name: value.to(backbone.device) for name, value in inputs.items()}
            states = backbone(**inputs, output_hidden_states=True, return_dict=True).hidden_states[total - count]
            index = torch.as_tensor(list(rows))
            hidden[index, : states.shape[1]] = states.float().cpu()
            mask[index, : states.shape[1]] = inputs["attention_mask"].cpu()
    backbone.train(was_training)
    return {"inputs_embeds": hidden, "attention_mask": mask}


def top_layers_setup(
    setup: LanguageSetup, data: LanguageData, validation_texts: Sequence[str], count: int
) -> tuple[LanguageSetup, dict[str, torch.Tensor]]:
    """`setup` with its backbone cut to the top `count` layers and the hidden states they read for the training,
    test and anchor texts (``token_states``); and those of `validation_texts`."""
    states = {
        split: hidden_states_below(setup.backbone, setup.tokenizer, texts, count, prefix=setup.prefix,
                                   max_length=setup.max_length)
        for split, texts in (("train", data.train_texts), ("test", data.test_texts), ("anchors", data.anchor_texts),
                             ("validation", validation_texts))
    }  # fmt: skip
    validation = states.pop("validation")
    return dataclasses.replace(setup, backbone=top_layers(setup.backbone, count), token_states=states), validation


__all__ = ["PassThroughEmbeddings", "hidden_states_below", "layer_stack", "top_layers", "top_layers_setup"]
