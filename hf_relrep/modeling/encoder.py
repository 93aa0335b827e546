"""`RelativeModel`, the encoder side: backbone → pooling → adapter → latent z → relative transform against the anchors.

The encoder side owns the backbone, the pooling, the anchors and the normalization; the head only reads the relative
vector, so the head of one model can sit on the encoder side of another (`hf_relrep.stitch`). It is one class for
every modality: what differs (input names, how raw anchors are stored and processed, the pooling mask) is asked of
its `Modality` (`hf_relrep.modeling.modalities`).
"""

import os
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

from ..anchors.identity import anchor_fingerprint, check_anchor_count
from ..anchors.storage import read_anchor_store, save_anchor_arrays
from ..configuration import REPRESENTATIONS, RelativeEncoderConfig
from ..errors import AnchorError, ProcessorError
from ..relative.pooling import pool_outputs
from ..relative.projection import RelativeProjection
from .anchor_latents import ANCHOR_CHUNK_SIZE, AnchorLatentsMixin
from .base import RelativePreTrainedModel
from .heads import build_adapter
from .loading import without_pooler
from .modalities import Modality, modality_of
from .outputs import RelativeModelOutput


def backbone_init_kwargs(config: RelativeEncoderConfig) -> dict[str, Any]:
    """Arguments for building the backbone: no pooling layer unless ``pooling="pooler"`` reads it."""
    return {} if config.pooling == "pooler" else without_pooler(config.backbone)


def encoder_of(model: PreTrainedModel) -> PreTrainedModel:
    """The part of an AutoModel that embeds inputs: an encoder-decoder's encoder (T5, BART, Whisper), else itself."""
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    return model


class RelativeModel(AnchorLatentsMixin, RelativePreTrainedModel):
    """The encoder side: backbone → pooling → adapter → latent → relative transform against the anchors.

    The anchors are part of the model. Texts live in the config and their token ids in the weights
    (``anchor_input_ids``, ``anchor_attention_mask``); images and audio live, as given, in ``anchors.safetensors``
    beside the weights and are re-processed by the saved processor on load. Their latents are cached in eval mode, so
    inference does not re-embed them per batch; in train mode they are re-embedded every
    ``config.anchor_refresh_steps`` forward calls. When the backbone has no trainable parameter, the anchors' pooled
    backbone outputs are computed once and only the adapter runs per step.

    Attributes:
        modality: the backbone's `Modality` (text, image, audio).
        processor: the tokenizer, image processor or feature extractor the anchors were processed with; saved with
            the model.
    """

    def __init__(self, config: RelativeEncoderConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        self.modality: Modality = modality_of(config.backbone)
        if backbone is None:
            backbone = encoder_of(AutoModel.from_config(config.backbone, **backbone_init_kwargs(config)))
        self.backbone = backbone
        # The backbone's attention choice; the config it was built with may be this very object, which
        # RelativeEncoderConfig reset to its own (None) when it took it in.
        attention = self.backbone.config._attn_implementation or config._attn_implementation
        config.backbone._attn_implementation = attention
        self.backbone.config._attn_implementation = attention
        if not getattr(config.backbone, "is_encoder_decoder", False):
            # One config object for the backbone, as in EncoderDecoderModel. An encoder-decoder's encoder keeps its
            # own (T5's is a copy marked as no decoder).
            self.backbone.config = config.backbone
        self.main_input_name = self.backbone.main_input_name
        self.prefix_tokens = self.modality.prefix_tokens(self.backbone)
        self.adapter = build_adapter(config)
        self.projection = RelativeProjection(
            config.latent_size,
            normalization=config.normalization,
            stats=config.stats,
            momentum=config.running_momentum,
            shrinkage=config.whiten_shrinkage,
            eps=config.eps,
            similarity=config.similarity,
        )
        if self.modality.name == "text":
            num_anchors, length = config.num_anchors, config.anchor_max_length
            self.register_buffer("anchor_input_ids", torch.zeros(num_anchors, length, dtype=torch.long))
            self.register_buffer("anchor_attention_mask", torch.zeros(num_anchors, length, dtype=torch.long))
        self.processor: Any = None
        self.raw_anchors: list[np.ndarray] | None = None
        self.anchor_options: dict[str, Any] = {}
        self._anchor_latent_cache: torch.Tensor | None = None
        self._anchor_feature_cache: torch.Tensor | None = None
        self._anchor_feature_override: torch.Tensor | None = None
        self._anchor_input_cache: list[tuple[list[int], dict[str, torch.Tensor]]] | None = None
        self._forward_calls = 0
        self.post_init()

    # ---------------------------------------------------------------- anchors
    def set_anchors(
        self,
        anchors: list[Any],
        processor: Any = None,
        *,
        anchor_set_id: str | None = None,
        sampling_rate: int | None = None,
    ) -> None:
        """Store a new anchor set: texts (config + token ids), images or audio (kept raw, saved beside the weights).

        Args:
            anchors: the anchors, in order, at least 2: strings for a text backbone, PIL images or H×W×C ``uint8``
                arrays for an image backbone, 1-D float waveforms for an audio backbone.
            processor: the backbone's tokenizer, image processor or feature extractor; defaults to the model's own
                (`self.processor`). It is kept on the model and saved with it.
            anchor_set_id: name of the parallel anchor set these belong to (see `RelativeEncoderConfig`).
            sampling_rate: of audio anchors; must match the feature extractor's (16 kHz by default).

        Raises:
            AnchorError: fewer than 2 anchors, a count other than the model was built for, or a bad anchor (named).
            ModalityError: anchors of another modality than the backbone's.
            ProcessorError: no processor, or one of another modality.
        """
        if isinstance(anchors, (str, bytes)):
            raise AnchorError("anchors is one string; pass a list of anchors (e.g. [text1, text2, ...]).")
        anchors = list(anchors)
        check_anchor_count(len(anchors))
        if self.config.num_anchors and len(anchors) != self.config.num_anchors:
            raise AnchorError(
                f"This model was built for {self.config.num_anchors} anchors, got {len(anchors)}: the head's "
                "input size is the number of anchors. Build a new model for a different anchor count."
            )
        processor = processor if processor is not None else self.processor
        if processor is not None:
            self.modality.check_processor(processor)
        options = {"sampling_rate": sampling_rate} if sampling_rate is not None else {}
        anchors = self.modality.prepare_anchors(anchors, processor, options)
        if processor is None:
            raise ProcessorError(
                f"Processing the anchors needs the backbone's {self.modality.processor_kind}: pass it "
                f"(set_anchors(anchors, processor)), e.g. {self.modality.auto_processor_class().__name__}"
                ".from_pretrained(<backbone>)."
            )
        self.modality.attach(self, anchors, processor, options)
        self.processor = processor
        self._anchor_input_cache = None
        if self.modality.stores_arrays:
            self.config.anchor_texts = None
            self.config.anchor_count = len(anchors)
        else:
            self.config.anchor_texts = anchors
        self.config.anchor_fingerprint = self.current_anchor_fingerprint()
        if anchor_set_id is not None:
            self.config.anchor_set_id = anchor_set_id
        self.clear_anchor_cache()

    def current_anchor_fingerprint(self) -> str | None:
        """`anchor_fingerprint` of the anchors held now: raw anchors, and for text the token ids in the weights.

        `from_pretrained` compares it with ``config.anchor_fingerprint`` (`check_anchor_identity`).
        """
        if self.modality.stores_arrays:
            return None if self.raw_anchors is None else self.modality.fingerprint(self.raw_anchors)
        if not self.config.anchor_texts or not bool(self.anchor_attention_mask.any()):
            return None  # built from a config alone: no ids to check yet
        return anchor_fingerprint(self.config.anchor_texts, (self.anchor_input_ids, self.anchor_attention_mask))

    def require_raw_anchors(self) -> list[np.ndarray]:
        if self.raw_anchors is None:
            raise AnchorError(
                f"This model's {self.modality.name} anchors are not loaded: load it with from_pretrained (which reads "
                "anchors.safetensors) or call model.set_anchors(anchors, processor)."
            )
        return self.raw_anchors

    def require_processor(self) -> Any:
        if self.processor is None:
            auto = self.modality.auto_processor_class().__name__
            raise ProcessorError(
                f"Embedding the {self.modality.name} anchors needs the backbone's {self.modality.processor_kind}, and "
                f"this model has none: pass processor={auto}.from_pretrained(<backbone>) to from_pretrained or "
                "set_anchors."
            )
        return self.processor

    def train(self, mode: bool = True):
        if mode != self.training:  # Trainer calls model.train() every step: keep the caches unless the mode changes
            self.clear_anchor_cache()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_anchor_cache()
        super()._load_from_state_dict(*args, **kwargs)

    # ---------------------------------------------------------------- saving and loading the anchors
    def save_extra_files(self, save_directory: str | os.PathLike) -> None:
        """Write the processor and, for image and audio anchors, ``anchors.safetensors`` into `save_directory`."""
        if self.processor is not None:
            self.processor.save_pretrained(save_directory)
        if self.modality.stores_arrays and self.raw_anchors is not None:
            metadata = {"modality": self.modality.name, "fingerprint": self.config.anchor_fingerprint or ""}
            save_anchor_arrays(
                save_directory, self.raw_anchors, {**metadata, **self.modality.store_metadata(self.anchor_options)}
            )

    def load_extra_files(self, source: str | os.PathLike, *, processor: Any = None, **hub_kwargs: Any) -> None:
        """Attach the processor (given, or saved with `source`) and read image or audio anchors back.

        Raises:
            AnchorError: the saved anchors do not match the fingerprint in the config.
            ProcessorError: a model with image or audio anchors saved without its processor, and none given.
        """
        if processor is not None:
            self.modality.check_processor(processor)
            self.processor = processor
        if not self.modality.stores_arrays or self.config.num_anchors == 0:
            return
        anchors, metadata = read_anchor_store(source, hub_kwargs, self.config, self.modality.fingerprint)
        self.raw_anchors = anchors
        self.anchor_options = self.modality.options_from_metadata(metadata)
        self._anchor_input_cache = None
        if self.processor is None:
            keys = ("revision", "token", "cache_dir", "local_files_only", "subfolder")
            self.processor = self.modality.load_processor(
                source, **{key: hub_kwargs[key] for key in keys if hub_kwargs.get(key) is not None}
            )
        self.modality.check_processor(self.processor)
        self.clear_anchor_cache()

    # ---------------------------------------------------------------- forward
    def backbone_features(
        self, inputs: dict[str, Any], output_hidden_states: bool | None = None, output_attentions: bool | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Pooled backbone outputs of a batch of validated inputs, and the backbone's output object."""
        kwargs = self.modality.backbone_kwargs(self, inputs)
        if output_hidden_states:
            kwargs["output_hidden_states"] = True
        if output_attentions:
            kwargs["output_attentions"] = True
        outputs = self.backbone(**kwargs, return_dict=True)
        mask = self.modality.pooling_mask(self, outputs, inputs)
        return pool_outputs(outputs, mask, self.config.pooling, prefix_tokens=self.prefix_tokens), outputs

    def encode(
        self,
        backbone_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **inputs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Any]:
        """Latents z of a batch (``input_ids``, ``pixel_values``, ``input_values``, ... as the modality reads);
        `backbone_features` (pooled backbone outputs) skips the backbone."""
        if backbone_features is not None:
            return self.adapter(backbone_features), None
        inputs = {name: value for name, value in inputs.items() if value is not None}
        self.modality.check_inputs(self, inputs)
        features, outputs = self.backbone_features(inputs, output_hidden_states, output_attentions)
        return self.adapter(features), outputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> RelativeModelOutput:
        """Latents and relative vectors of a batch of any modality: the inputs the backbone's processor returns."""
        latents, outputs = self.encode(
            backbone_features,
            output_hidden_states,
            output_attentions,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            input_values=input_values,
            input_features=input_features,
        )
        relative = anchors = None
        if REPRESENTATIONS[self.config.representation].uses_anchors:
            anchors = self.anchor_latents()
            relative = self.projection(latents, anchors.to(latents.dtype))
        if self.training:
            self._forward_calls += 1
        return RelativeModelOutput(
            latents=latents,
            relative=relative,
            anchor_latents=anchors,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)


__all__ = ["ANCHOR_CHUNK_SIZE", "RelativeModel", "backbone_init_kwargs", "encoder_of"]
