"""A stitched classifier of two *absolute* models: one model's encoder half, a fitted latent translation, another
model's head half (Maiorca et al., "Latent Space Translation via Semantic Alignment", NeurIPS 2023).

``logits = head_Y(T(encoder_X(inputs)))`` with T a `LatentTranslation` (`hf_relrep.alignment.translation`) fitted on
parallel anchors. `ABSOLUTE_KINDS` says, per kind of classifier, where its halves are and how to rebuild them empty
from a config, so that the model is built from `TranslatedStitchConfig` alone and saves in safetensors and loads
through the Auto classes and the Hub like any other model:

- ``"hf-relrep"``: our classifiers with ``representation="absolute"``: the latent is the encoder side's output
  (backbone → pooling → adapter), the head is `ClassificationHead`.
- ``"pooled"``: BERT-like ``*ForSequenceClassification`` (BERT, ALBERT): ``dropout → Linear`` on the backbone's
  ``pooler_output``.
- ``"first-token"``: RoBERTa-like (RoBERTa, XLM-R, CamemBERT, ELECTRA): a classification module with ``dense`` and
  ``out_proj`` that reads the first token's last hidden state.

Each encoder half is a module ``forward(**inputs) → [batch, d]``; each head half ``forward(latents) → logits``.
`hf_relrep.stitching.stitch_translated` fits the translation and makes the model.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel

from ..alignment.translation import LatentTranslation
from ..configuration import TranslatedStitchConfig
from ..errors import ConfigurationError, StitchingError
from ..hub import RelativeHubMixin
from ..utils.registry import Registry
from .base import RelativePreTrainedModel
from .classifier import RelativeClassifierBase
from .encoder import RelativeModel
from .heads import ClassificationHead
from .loading import without_pooler
from .outputs import RelativeSequenceClassifierOutput


class RelativeLatents(nn.Module):
    """The latent z of our encoder side (`RelativeModel`): backbone → pooling → adapter; or the adapter alone on
    precomputed ``backbone_features``."""

    def __init__(self, model: RelativeModel):
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, backbone_features: torch.Tensor | None = None, **inputs: torch.Tensor | None) -> torch.Tensor:
        return self.model.encode(backbone_features, **inputs)[0]


class BackboneLatents(nn.Module):
    """A transformers backbone read the way its classification head reads it: the pooler output or the first token."""

    def __init__(self, backbone: PreTrainedModel, read: str):
        super().__init__()
        self.backbone, self.read = backbone, read
        self.train(backbone.training)

    def forward(self, backbone_features: torch.Tensor | None = None, **inputs: torch.Tensor | None) -> torch.Tensor:
        if backbone_features is not None:
            raise StitchingError("backbone_features are for hf-relrep encoder sides; pass input_ids to this model.")
        outputs = self.backbone(**{k: v for k, v in inputs.items() if v is not None}, return_dict=True)
        return outputs.pooler_output if self.read == "pooler" else outputs.last_hidden_state[:, 0]

    def extra_repr(self) -> str:
        return f"read={self.read!r}"


class DropoutLinearHead(nn.Module):
    """``Linear(dropout(x))``: the head of BERT-like classifiers, on the pooled vector."""

    def __init__(self, dropout: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.dropout, self.classifier = dropout, classifier

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(latents))


class FirstTokenHead(nn.Module):
    """A RoBERTa-like classification module, fed the vector it would take from the first token (``[batch, 1, d]``)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.classifier(latents.unsqueeze(1))


@dataclass(frozen=True)
class AbsoluteKind:
    """Where the halves of one kind of classifier are, and how to rebuild them from its config.

    Attributes:
        detect: whether a loaded classifier is of this kind.
        encoder_of, head_of: its halves (modules that share the classifier's weights).
        encoder_from_config, head_from_config: empty halves for a classifier config (weights loaded later).
    """

    detect: Callable[[nn.Module], bool]
    encoder_of: Callable[[nn.Module], nn.Module]
    head_of: Callable[[nn.Module], nn.Module]
    encoder_from_config: Callable[[PreTrainedConfig], nn.Module]
    head_from_config: Callable[[PreTrainedConfig], nn.Module]


def _children(model: nn.Module) -> set[str]:
    return {name for name, _ in model.named_children()}


def _backbone(model: nn.Module) -> nn.Module | None:
    return getattr(model, getattr(model, "base_model_prefix", ""), None)


def _is_pooled(model: nn.Module) -> bool:
    backbone = _backbone(model)
    return (
        isinstance(getattr(model, "classifier", None), nn.Linear)
        and _children(model) == {model.base_model_prefix, "dropout", "classifier"}
        and getattr(backbone, "pooler", None) is not None
    )


def _is_first_token(model: nn.Module) -> bool:
    classifier = getattr(model, "classifier", None)
    return (
        _backbone(model) is not None
        and _children(model) == {model.base_model_prefix, "classifier"}
        and hasattr(classifier, "dense")
        and hasattr(classifier, "out_proj")
    )


def _classifier_dropout(config: PreTrainedConfig) -> float:
    for name in ("classifier_dropout", "classifier_dropout_prob", "hidden_dropout_prob"):
        value = getattr(config, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _first_token_classifier(config: PreTrainedConfig) -> nn.Module:
    """The classification module of `config`'s ``*ForSequenceClassification``, built on the meta device (its
    backbone is never materialized), then allocated empty on the CPU."""
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    return model.classifier.to_empty(device="cpu")


ABSOLUTE_KINDS: Registry[AbsoluteKind] = Registry("absolute classifier kind")
"""The kinds of classifier a translated stitch splits, tried in this order; the names are
`hf_relrep.configuration.ABSOLUTE_KIND_NAMES`, which `TranslatedStitchConfig` validates against."""
ABSOLUTE_KINDS.register(
    "hf-relrep",
    AbsoluteKind(
        detect=lambda model: isinstance(model, RelativeClassifierBase),
        encoder_of=lambda model: RelativeLatents(model.encoder),
        head_of=lambda model: model.head,
        encoder_from_config=lambda config: RelativeLatents(RelativeModel(config)),
        head_from_config=ClassificationHead,
    ),
)
ABSOLUTE_KINDS.register(
    "pooled",
    AbsoluteKind(
        detect=_is_pooled,
        encoder_of=lambda model: BackboneLatents(_backbone(model), "pooler"),
        head_of=lambda model: DropoutLinearHead(model.dropout, model.classifier),
        encoder_from_config=lambda config: BackboneLatents(AutoModel.from_config(config), "pooler"),
        head_from_config=lambda config: DropoutLinearHead(
            nn.Dropout(_classifier_dropout(config)), nn.Linear(config.hidden_size, config.num_labels)
        ),
    ),
)
ABSOLUTE_KINDS.register(
    "first-token",
    AbsoluteKind(
        detect=_is_first_token,
        encoder_of=lambda model: BackboneLatents(_backbone(model), "first-token"),
        head_of=lambda model: FirstTokenHead(model.classifier),
        encoder_from_config=lambda config: BackboneLatents(
            AutoModel.from_config(config, **without_pooler(config)), "first-token"
        ),
        head_from_config=lambda config: FirstTokenHead(_first_token_classifier(config)),
    ),
)


def absolute_kind(model: nn.Module) -> str:
    """The `ABSOLUTE_KINDS` name of a loaded classifier.

    Raises:
        StitchingError: a relative classifier (it stitches without translation), or a head hf-relrep cannot split off.
    """
    if isinstance(model, RelativeClassifierBase) and model.config.representation != "absolute":
        raise StitchingError(
            "Latent translation stitches absolute models; this one is relative, and relative models stitch without "
            "translation: stitch(encoder_from=..., head_from=...)."
        )
    for name, kind in ABSOLUTE_KINDS.items():
        if kind.detect(model):
            return name
    raise StitchingError(
        f"hf-relrep cannot split a {type(model).__name__} into an encoder and a head: supported are hf-relrep "
        "classifiers with representation='absolute', BERT-like classifiers (a Linear on the pooler output) and "
        "RoBERTa-like ones (a dense/out_proj head on the first token)."
    )


class TranslatedModelForSequenceClassification(RelativeHubMixin, RelativePreTrainedModel):
    """``head(translation(encoder(inputs)))``: an absolute encoder half, a fitted translation, an absolute head half.

    Attributes:
        encoder: ``forward(**inputs) → [batch, source_dim]`` (an `ABSOLUTE_KINDS` encoder half).
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
            raise ConfigurationError(
                "A translated stitch needs source_dim and target_dim (set by stitch_translated())."
            )
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


__all__ = [
    "ABSOLUTE_KINDS",
    "AbsoluteKind",
    "BackboneLatents",
    "DropoutLinearHead",
    "FirstTokenHead",
    "RelativeLatents",
    "TranslatedModelForSequenceClassification",
    "absolute_kind",
]
