"""`RelativeModelForSequenceClassification`: a text classifier whose head reads relative representations."""

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from .classifier import RelativeClassifierBase
from .outputs import RelativeSequenceClassifierOutput


class RelativeModelForSequenceClassification(RelativeClassifierBase):
    """A sequence classifier whose head reads relative representations (or, in absolute mode, the latent).

    Any text backbone AutoModel loads: encoder-only (BERT, RoBERTa, ...), decoder-only (GPT-2, Llama, ...: ``"last"``
    pooling by default) and encoder-decoder (T5, BART: their encoder alone is wrapped, loaded and saved).

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

    modality_name = "text"
    main_input_name = "input_ids"

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
        pooling: str | None = None,
        representation: str = "relative",
        tokenizer: PreTrainedTokenizerBase | None = None,
        anchor_set_id: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> "RelativeModelForSequenceClassification":
        """Wrap a pretrained text backbone (local folder or Hub id) in a new relative classifier.

        The backbone's weights and tokenizer are loaded with `AutoModel` / `AutoTokenizer` (an encoder-decoder's
        encoder only); the adapter and head are freshly initialized. The anchors are tokenized with the backbone's
        tokenizer and stored in the model; the tokenizer is saved with it. A tokenizer without a pad token (GPT-2)
        works: the anchors are padded with its eos token, hidden by the attention mask. (To batch your own inputs
        with such a tokenizer, set ``tokenizer.pad_token = tokenizer.eos_token``.)

        Args:
            pretrained_model_name_or_path: any model `AutoModel` can load.
            anchor_texts: anchor sentences (≥ 2) for a relative model.
            num_labels / id2label: the label set.
            normalization, stats, representation: see [`RelativeEncoderConfig`].
            pooling: ``"cls"``, ``"mean"``, ``"max"``, ``"last"`` or ``"pooler"``; defaults to ``"last"`` for
                decoder-only backbones and ``"cls"`` (the paper) for the others.
            tokenizer: defaults to `AutoTokenizer.from_pretrained(pretrained_model_name_or_path)`.
            anchor_set_id: name of the parallel anchor set (needed to stitch with models in other languages).
            backbone_kwargs: passed to `AutoModel.from_pretrained` (e.g. `revision`, `dtype`).
            **config_kwargs: any other [`RelativeEncoderConfig`] field (`adapter`, `head`, `whiten_shrinkage`, ...).

        Raises:
            BackboneError: AutoModel cannot load the backbone. ModalityError: it is not a text backbone.
            AnchorError: fewer than 2 anchors, or an anchor that is empty or tokenizes to nothing (named).
        """
        return cls.build_from_backbone(
            pretrained_model_name_or_path,
            anchors=anchor_texts,
            num_labels=num_labels,
            id2label=id2label,
            normalization=normalization,
            stats=stats,
            pooling=pooling,
            representation=representation,
            processor=tokenizer,
            anchor_set_id=anchor_set_id,
            backbone_kwargs=backbone_kwargs,
            **config_kwargs,
        )

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
        return self.classify(
            labels=labels,
            backbone_features=backbone_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=return_dict,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        )


__all__ = ["RelativeModelForSequenceClassification"]
