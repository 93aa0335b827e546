"""The two halves of an absolute classifier: what turns inputs into the vector its head reads, and that head.

Latent space translation (`hf_relrep.alignment.translation`) stitches classifiers that were never trained relative: the
encoder half of one model, a fitted map, the head half of another. `ABSOLUTE_KINDS` says, per kind of classifier,
where the halves are and how to rebuild them empty from a config (so that a stitched model loads with
``from_pretrained``):

- ``"hf-relrep"``: our classifiers with ``representation="absolute"``: the latent is the encoder side's output
  (backbone → pooling → adapter), the head is `ClassificationHead`.
- ``"pooled"``: BERT-like ``*ForSequenceClassification`` (BERT, ALBERT): ``dropout → Linear`` on the backbone's
  ``pooler_output``.
- ``"first-token"``: RoBERTa-like (RoBERTa, XLM-R, CamemBERT, ELECTRA): a classification module with ``dense`` and
  ``out_proj`` that reads the first token's last hidden state.

Each encoder half is a module ``forward(**inputs) → [batch, d]``; each head half ``forward(latents) → logits``.
"""

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel

from ..configuration import RelativeEncoderConfig
from ..errors import StitchingError
from .classifier import RelativeClassifierBase
from .encoder import RelativeModel
from .heads import ClassificationHead
from .loading import without_pooler


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
        latent_size: the size of the vector the head reads.
    """

    detect: Callable[[nn.Module], bool]
    encoder_of: Callable[[nn.Module], nn.Module]
    head_of: Callable[[nn.Module], nn.Module]
    encoder_from_config: Callable[[PreTrainedConfig], nn.Module]
    head_from_config: Callable[[PreTrainedConfig], nn.Module]
    latent_size: Callable[[PreTrainedConfig], int]


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


ABSOLUTE_KINDS: dict[str, AbsoluteKind] = {
    "hf-relrep": AbsoluteKind(
        detect=lambda model: isinstance(model, RelativeClassifierBase),
        encoder_of=lambda model: RelativeLatents(model.encoder),
        head_of=lambda model: model.head,
        encoder_from_config=lambda config: RelativeLatents(RelativeModel(config)),
        head_from_config=ClassificationHead,
        latent_size=lambda config: config.latent_size,
    ),
    "pooled": AbsoluteKind(
        detect=_is_pooled,
        encoder_of=lambda model: BackboneLatents(_backbone(model), "pooler"),
        head_of=lambda model: DropoutLinearHead(model.dropout, model.classifier),
        encoder_from_config=lambda config: BackboneLatents(AutoModel.from_config(config), "pooler"),
        head_from_config=lambda config: DropoutLinearHead(
            nn.Dropout(_classifier_dropout(config)), nn.Linear(config.hidden_size, config.num_labels)
        ),
        latent_size=lambda config: config.hidden_size,
    ),
    "first-token": AbsoluteKind(
        detect=_is_first_token,
        encoder_of=lambda model: BackboneLatents(_backbone(model), "first-token"),
        head_of=lambda model: FirstTokenHead(model.classifier),
        encoder_from_config=lambda config: BackboneLatents(
            AutoModel.from_config(config, **without_pooler(config)), "first-token"
        ),
        head_from_config=lambda config: FirstTokenHead(_first_token_classifier(config)),
        latent_size=lambda config: config.hidden_size,
    ),
}


def absolute_kind(model: nn.Module) -> str:
    """The `ABSOLUTE_KINDS` name of a loaded classifier.

    Raises:
        StitchingError: a relative classifier (it stitches without translation), or a head hf-relrep cannot split off.
    """
    if isinstance(model, RelativeClassifierBase) and model.config.representation != "absolute":
        raise StitchingError(
            "Latent translation stitches absolute models; this one is relative, and relative models stitch without "
            "translation: stitch(encoder_from=..., head_from=...) with translation=None."
        )
    for name, kind in ABSOLUTE_KINDS.items():
        if kind.detect(model):
            return name
    raise StitchingError(
        f"hf-relrep cannot split a {type(model).__name__} into an encoder and a head: supported are hf-relrep "
        "classifiers with representation='absolute', BERT-like classifiers (a Linear on the pooler output) and "
        "RoBERTa-like ones (a dense/out_proj head on the first token)."
    )


def encoder_config_of(model: nn.Module) -> PreTrainedConfig:
    """A copy of the config that rebuilds `model`'s encoder half (ours: its `RelativeEncoderConfig`)."""
    return copy.deepcopy(model.config)


def latent_size_of(model: nn.Module) -> int:
    return ABSOLUTE_KINDS[absolute_kind(model)].latent_size(model.config)


@torch.inference_mode()
def embed_with(
    encoder: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    prefix: str = "",
    max_length: int = 128,
    batch_size: int = 32,
) -> torch.Tensor:
    """``[len(texts), d]`` latents of `texts` from an encoder half, in eval mode, on the CPU.

    Every submodule's train/eval mode is restored afterwards (the half may wrap a model the caller still uses).
    """
    device = next(encoder.parameters()).device
    modes = [(module, module.training) for module in encoder.modules()]
    encoder.eval()
    try:
        parts = []
        for start in range(0, len(texts), batch_size):
            chunk = [prefix + text for text in texts[start : start + batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            parts.append(encoder(**{k: v.to(device) for k, v in batch.items()}).float().cpu())
    finally:
        for module, mode in modes:
            module.training = mode
    return torch.cat(parts)


def text_settings(model: nn.Module, tokenizer) -> tuple[str, int]:
    """``(prefix, max_length)`` for embedding texts with `model`: ours from its config, others the backbone's limit."""
    if isinstance(model.config, RelativeEncoderConfig):
        return model.config.anchor_text_prefix, model.config.anchor_max_length
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000]
    return "", min([512, *limits])


__all__ = [
    "ABSOLUTE_KINDS",
    "AbsoluteKind",
    "BackboneLatents",
    "DropoutLinearHead",
    "FirstTokenHead",
    "RelativeLatents",
    "absolute_kind",
    "embed_with",
    "encoder_config_of",
    "latent_size_of",
    "text_settings",
]
