"""Text: token ids in, anchors as texts in the config and token ids in the weights.

Encoder-only, decoder-only and encoder-decoder backbones (the encoder of the latter) all read ``input_ids``.
Decoder-only tokenizers often have no pad token (GPT-2): anchors are tokenized one by one and padded on the right with
the pad token, else the eos token, else 0 — padding that the attention mask hides. Decoder backbones receive position
ids counted from the attention mask, so that left-padded and right-padded batches give the same latents as their
examples one by one; ``"last"`` pooling reads the last real token under either padding.
"""

from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from ...errors import AnchorError, ModalityError, ProcessorError
from .base import Modality, forward_accepts


def is_decoder_only(backbone_config: Any) -> bool:
    """A causal language model that is not also a masked one (GPT-2, Llama, ...), nor an encoder-decoder."""
    model_type = backbone_config.model_type
    return (
        not getattr(backbone_config, "is_encoder_decoder", False)
        and model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


class TextModality(Modality):
    name = "text"
    main_input_names = ("input_ids",)
    input_names = ("input_ids", "inputs_embeds", "token_type_ids")
    anchor_argument = "anchor_texts"
    processor_kind = "tokenizer"
    task_class = "RelativeModelForSequenceClassification"
    default_pooling = "cls"

    def auto_processor_class(self) -> Any:
        return AutoTokenizer

    def describe_inputs(self) -> str:
        return "input_ids (or inputs_embeds)"

    def check_processor(self, processor: Any) -> None:
        if not isinstance(processor, PreTrainedTokenizerBase):
            raise ProcessorError(
                f"A text backbone needs a tokenizer, got a {type(processor).__name__}; pass "
                "tokenizer=AutoTokenizer.from_pretrained(<backbone>)."
            )

    def pick_pooling(self, backbone: Any) -> str:
        return "last" if is_decoder_only(backbone.config) else "cls"

    def prepare_anchors(self, anchors: Any, processor: Any, options: dict[str, Any]) -> list[str]:
        if isinstance(anchors, str):
            raise AnchorError(
                "anchor_texts is one string; pass a list of anchor sentences (e.g. anchor_texts=[text1, text2, ...])."
            )
        anchors = list(anchors)
        for index, text in enumerate(anchors):
            if not isinstance(text, str):
                raise ModalityError(
                    f"Anchor {index} is a {type(text).__name__}, not a text: this backbone reads text, so its anchors "
                    "are strings (anchor_texts=[...]). For images or audio, wrap an image or audio backbone with "
                    "RelativeModelForImageClassification / RelativeModelForAudioClassification."
                )
            if not text.strip():
                raise AnchorError(
                    f"Anchor {index} ({text!r}) is empty; drop empty anchors (and their counterparts in the other "
                    "models' anchor sets)."
                )
        if processor is None:
            raise ProcessorError(
                "Text anchors need the backbone's tokenizer: pass it (set_anchors(texts, tokenizer))."
            )
        return anchors

    def tokenize(self, anchors: list[str], tokenizer: Any, prefix: str, max_length: int) -> dict[str, torch.Tensor]:
        """Anchor token ids ``[num_anchors, max_length]``, right-padded, and their attention mask.

        Raises:
            AnchorError: an anchor that tokenizes to no token beyond the special ones, named.
        """
        encoded = tokenizer(
            [prefix + text for text in anchors],
            truncation=True,
            max_length=max_length,
            padding=False,
            return_special_tokens_mask=True,
        )
        ids_rows, special_rows = encoded["input_ids"], encoded["special_tokens_mask"]
        empty = [index for index, special in enumerate(special_rows) if not any(flag == 0 for flag in special)]
        if empty:
            named = ", ".join(f"{index} ({anchors[index]!r})" for index in empty[:5])
            raise AnchorError(
                f"Anchor(s) {named} tokenize to no token with this tokenizer (nothing but special tokens): the "
                "backbone would see nothing of them. Drop or rewrite them (and their counterparts)."
            )
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        input_ids = torch.full((len(anchors), max_length), int(pad), dtype=torch.long)
        attention_mask = torch.zeros((len(anchors), max_length), dtype=torch.long)
        for row, ids in enumerate(ids_rows):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def attach(self, encoder: Any, anchors: list[str], processor: Any, options: dict[str, Any]) -> None:
        config = encoder.config
        encoded = self.tokenize(anchors, processor, config.anchor_text_prefix, config.anchor_max_length)
        device = encoder.anchor_input_ids.device
        encoder.anchor_input_ids = encoded["input_ids"].to(device)
        encoder.anchor_attention_mask = encoded["attention_mask"].to(device)

    def anchor_batches(self, encoder: Any, chunk_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        mask = encoder.anchor_attention_mask
        if not bool(mask.any(dim=1).all()):
            raise AnchorError(
                "Anchor token ids are missing (this model was built from a config alone): call "
                "model.set_anchors(texts, tokenizer) before using it."
            )
        length = int(mask.sum(1).max())
        for start in range(0, mask.shape[0], chunk_size):
            stop = min(start + chunk_size, mask.shape[0])
            yield (
                list(range(start, stop)),
                {
                    "input_ids": encoder.anchor_input_ids[start:stop, :length],
                    "attention_mask": mask[start:stop, :length],
                },
            )

    def backbone_kwargs(self, encoder: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(inputs)
        mask = kwargs.get("attention_mask")
        backbone = encoder.backbone
        if (
            mask is not None
            and "position_ids" not in kwargs
            and is_decoder_only(backbone.config)
            and forward_accepts(type(backbone), "position_ids")
        ):
            # As generation does: positions count real tokens only, so left padding does not shift them.
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_min(0)
        return kwargs

    def pooling_mask(self, encoder: Any, outputs: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        return inputs.get("attention_mask")


TEXT = TextModality()

__all__ = ["TEXT", "TextModality", "is_decoder_only"]
