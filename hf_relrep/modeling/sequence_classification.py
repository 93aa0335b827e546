"""`RelativeModelForSequenceClassification`: a sequence classifier whose head reads relative representations."""

import copy
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..configuration import RelativeEncoderConfig
from ..hub import RelativeHubMixin
from ..projection import check_anchor_count
from .base import RelativePreTrainedModel
from .encoder import RelativeModel
from .heads import ClassificationHead
from .loading import without_pooler
from .outputs import RelativeSequenceClassifierOutput


class RelativeModelForSequenceClassification(RelativeHubMixin, RelativePreTrainedModel):
    """A sequence classifier whose head reads relative representations (or, in absolute mode, the latent).

    ``encoder`` is the encoder side ([`RelativeModel`]); ``head`` is the head side ([`ClassificationHead`]).

    Example:

    ```python
    >>> from hf_relrep import RelativeModelForSequenceClassification
    >>> model = RelativeModelForSequenceClassification.from_backbone_pretrained(
    ...     "path/or/hub-id", anchor_texts=anchor_sentences, num_labels=2, pooling="mean"
    ... )
    >>> model.save_pretrained("my-relative-model")
    >>> # later, anywhere hf_relrep is imported:
    >>> from transformers import AutoModelForSequenceClassification
    >>> model = AutoModelForSequenceClassification.from_pretrained("my-relative-model")
    ```
    """

    def __init__(self, config: RelativeEncoderConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        if config.representation == "relative":
            check_anchor_count(
                config.num_anchors,
                fix="pass anchor_texts to the config, or use from_backbone_pretrained(..., anchor_texts=[...])",
            )
        self.encoder = RelativeModel(config, backbone=backbone)
        self.head = ClassificationHead(config)
        self.post_init()

    @classmethod
    def from_backbone_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        anchor_texts: list[str] | None = None,
        num_labels: int | None = None,
        id2label: dict[int, str] | None = None,
        normalization: str = "robust",
        stats: str = "anchors",
        pooling: str = "cls",
        representation: str = "relative",
        tokenizer: PreTrainedTokenizerBase | None = None,
        anchor_set_id: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> "RelativeModelForSequenceClassification":
        """Wrap a pretrained backbone (local folder or Hub id) in a new relative classifier.

        The backbone's weights and tokenizer are loaded with `AutoModel` / `AutoTokenizer`; the adapter and head are
        freshly initialized. The anchors are tokenized with the backbone's tokenizer and stored in the model.

        Args:
            pretrained_model_name_or_path: any model `AutoModel` can load.
            anchor_texts: anchor sentences (≥ 2) for a relative model.
            num_labels / id2label: the label set.
            normalization, stats, pooling, representation: see [`RelativeEncoderConfig`].
            tokenizer: defaults to `AutoTokenizer.from_pretrained(pretrained_model_name_or_path)`.
            anchor_set_id: name of the parallel anchor set (needed to stitch with models in other languages).
            backbone_kwargs: passed to `AutoModel.from_pretrained` (e.g. `revision`, `dtype`).
            **config_kwargs: any other [`RelativeEncoderConfig`] field (`adapter`, `head`, `whiten_shrinkage`, ...).
        """
        if representation == "relative":
            check_anchor_count(
                len(anchor_texts or ()),
                fix="pass anchor_texts, or representation='absolute' for the baseline without anchors",
            )
        backbone_kwargs = dict(backbone_kwargs or {})
        hub_kwargs = {
            key: backbone_kwargs[key] for key in ("revision", "token", "cache_dir") if key in backbone_kwargs
        }
        backbone_config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        backbone = AutoModel.from_pretrained(
            pretrained_model_name_or_path, **{**without_pooler(backbone_config), **backbone_kwargs}
        )
        if id2label is not None:
            config_kwargs["id2label"] = id2label
        elif num_labels is not None:
            config_kwargs["num_labels"] = num_labels
        config = RelativeEncoderConfig(
            backbone=copy.deepcopy(backbone.config),
            anchor_texts=list(anchor_texts) if anchor_texts is not None else None,
            anchor_set_id=anchor_set_id,
            normalization=normalization,
            stats=stats,
            pooling=pooling,
            representation=representation,
            **config_kwargs,
        )
        model = cls(config, backbone=backbone)
        if anchor_texts is not None:
            if tokenizer is None:
                revision = backbone_kwargs.get("revision")
                tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, revision=revision)
            model.encoder.set_anchors(anchor_texts, tokenizer)
        model.config.base_model = str(pretrained_model_name_or_path)
        return model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> RelativeSequenceClassifierOutput | tuple:
        """Classify a batch.

        Args:
            input_ids, attention_mask, token_type_ids, inputs_embeds: as for the backbone.
            backbone_features: ``[batch, hidden]`` precomputed pooled backbone outputs; skips the backbone (for
                training on cached features of a frozen backbone).
            labels: ``[batch]`` class ids (or floats for regression, multi-hot for multi-label).
        """
        encoded = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
            backbone_features=backbone_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        features = encoded.relative if self.config.representation == "relative" else encoded.latents
        logits = self.head(features)
        loss = self.classification_loss(logits, labels) if labels is not None else None
        output = RelativeSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            latents=encoded.latents,
            relative=encoded.relative,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict is not False else output.to_tuple()

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, MSE or BCE by `config.problem_type` (inferred from the labels as transformers does)."""
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.config.num_labels == 1:
                problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem_type = "single_label_classification"
            else:
                problem_type = "multi_label_classification"
        if problem_type == "regression":
            return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
        if problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)
