"""A stitched classifier of two *absolute* models: one model's encoder half, a fitted latent translation, another
model's head half (Maiorca et al., "Latent Space Translation via Semantic Alignment", NeurIPS 2023).

``logits = head_Y(T(encoder_X(inputs)))`` with T a `LatentTranslation` fitted on parallel anchors. The model is built
from `TranslatedStitchConfig` alone — the two source configs, which half each kind keeps (`ABSOLUTE_KINDS`), the
translation method and sizes — so it saves in safetensors and loads through the Auto classes and the Hub like any
other model; `hf_relrep.stitch(..., translation=...)` makes one.
"""

from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ..alignment.translation import TRANSLATION_METHODS, LatentTranslation
from ..errors import ConfigurationError
from ..hub import RelativeHubMixin
from ..version import __version__
from .absolute_sides import ABSOLUTE_KINDS
from .base import RelativePreTrainedModel
from .classifier import RelativeClassifierBase
from .outputs import RelativeSequenceClassifierOutput


@strict
class TranslatedStitchConfig(PreTrainedConfig):
    r"""Configuration of a [`TranslatedModelForSequenceClassification`].

    Args:
        encoder (`PreTrainedConfig` or `dict`):
            Config of the classifier the encoder half comes from (ours, or e.g. a `BertConfig`).
        head (`PreTrainedConfig` or `dict`):
            Config of the classifier the head half comes from; its labels are the model's.
        encoder_kind, head_kind (`str`):
            Names in `hf_relrep.modeling.absolute_sides.ABSOLUTE_KINDS`: ``"hf-relrep"``, ``"pooled"``,
            ``"first-token"``.
        translation (`str`, defaults to `"orthogonal"`):
            The translation method (`hf_relrep.alignment.translation.TRANSLATION_METHODS`).
        source_dim, target_dim (`int`):
            Sizes of the encoder half's latent and of the head half's input.
        num_anchors (`int`), anchor_set_id (`str`), anchor_fingerprint (`str`):
            The parallel anchors the translation was fitted on: how many, the set's declared name, and the
            fingerprint of the ordered (encoder texts, head texts) pairs.
        provenance (`dict`):
            Sources, revisions and content hashes of both halves, and the space comparison when asked for.
    """

    model_type = "hf-relrep-translated"
    sub_configs_defaults = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
        "head": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }

    encoder: PreTrainedConfig | dict | None = None
    head: PreTrainedConfig | dict | None = None
    encoder_kind: str = "pooled"
    head_kind: str = "pooled"
    translation: str = "orthogonal"
    source_dim: int | None = None
    target_dim: int | None = None
    num_anchors: int | None = None
    anchor_set_id: str | None = None
    anchor_fingerprint: str | None = None
    provenance: dict | None = None
    hf_relrep_version: str | None = None

    def __post_init__(self, **kwargs: Any):
        super().__post_init__(**kwargs)
        for name in ("encoder_kind", "head_kind"):
            if getattr(self, name) not in ABSOLUTE_KINDS:
                raise ConfigurationError(
                    f"Unknown {name}={getattr(self, name)!r}; choose one of {', '.join(ABSOLUTE_KINDS)}."
                )
        if self.translation not in TRANSLATION_METHODS:
            raise ConfigurationError(
                f"Unknown translation={self.translation!r}; choose one of {', '.join(TRANSLATION_METHODS)}."
            )
        head = self.__dict__.get("head")
        if isinstance(head, PreTrainedConfig) and "id2label" not in kwargs:
            self.id2label = dict(head.id2label)

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The encoder half's text config: where token ids and vocabulary live."""
        source = self.__dict__.get("encoder")
        if isinstance(source, PreTrainedConfig):
            return source.get_text_config(decoder=decoder, encoder=encoder)
        return super().get_text_config(decoder=decoder, encoder=encoder)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for part in ("encoder", "head"):  # where a source was loaded from is provenance's business, not its config's
            if isinstance(output.get(part), dict):
                output[part].pop("_name_or_path", None)
        output["hf_relrep_version"] = __version__
        return output


class TranslatedModelForSequenceClassification(RelativeHubMixin, RelativePreTrainedModel):
    """``head(translation(encoder(inputs)))``: an absolute encoder half, a fitted translation, an absolute head half.

    Attributes:
        encoder: ``forward(**inputs) → [batch, source_dim]`` (`hf_relrep.modeling.absolute_sides`).
        translation: a `LatentTranslation` (buffers only).
        head: ``forward([batch, target_dim]) → logits``.
        tokenizer: the encoder's tokenizer, when known; saved with the model.
    """

    config_class = TranslatedStitchConfig
    config: TranslatedStitchConfig
    base_model_prefix = "encoder"

    def __init__(self, config: TranslatedStitchConfig):
        super().__init__(config)
        if config.source_dim is None or config.target_dim is None:
            raise ConfigurationError("A translated stitch needs source_dim and target_dim (set by stitch()).")
        self.encoder = ABSOLUTE_KINDS[config.encoder_kind].encoder_from_config(config.encoder)
        self.translation = LatentTranslation(config.translation, config.source_dim, config.target_dim)
        self.head = ABSOLUTE_KINDS[config.head_kind].head_from_config(config.head)
        self.tokenizer: Any = None
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> RelativeSequenceClassifierOutput | tuple:
        """Classify a batch.

        Args:
            input_ids, attention_mask, token_type_ids, inputs_embeds: as for the encoder's backbone.
            backbone_features: precomputed pooled backbone outputs (hf-relrep encoder halves only).
            labels: class ids (or floats for regression, multi-hot for multi-label).

        Returns:
            `RelativeSequenceClassifierOutput` whose ``latents`` are the translated latents the head read.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        latents = self.translation(self.encoder(backbone_features=backbone_features, **inputs))
        logits = self.head(latents)
        # The loss by problem type, exactly as our relative classifiers compute it (it reads only self.config).
        loss = RelativeClassifierBase.classification_loss(self, logits, labels) if labels is not None else None
        output = RelativeSequenceClassifierOutput(loss=loss, logits=logits, latents=latents)
        return output if return_dict is not False else output.to_tuple()

    def save_extra_files(self, save_directory) -> None:
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)

    def get_input_embeddings(self) -> nn.Module:
        model = self.encoder.model if hasattr(self.encoder, "model") else self.encoder.backbone
        return model.get_input_embeddings()


__all__ = ["TranslatedModelForSequenceClassification", "TranslatedStitchConfig"]
