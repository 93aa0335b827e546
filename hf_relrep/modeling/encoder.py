"""`RelativeModel`, the encoder side: backbone → pooling → adapter → latent z → relative transform against the anchors.

The encoder side owns the backbone, the pooling, the anchors and the normalization; the head only reads the relative
vector, so the head of one model can sit on the encoder side of another (`hf_relrep.stitch`).
"""

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from ..configuration import RelativeEncoderConfig, anchor_fingerprint
from ..errors import AnchorError, ConfigurationError
from ..pooling import pool
from ..projection import RelativeProjection, check_anchor_count
from .base import RelativePreTrainedModel
from .heads import build_adapter
from .loading import without_pooler
from .outputs import RelativeModelOutput


ANCHOR_CHUNK_SIZE = 64


class RelativeModel(RelativePreTrainedModel):
    """The encoder side: backbone → pooling → adapter → latent → relative transform against the anchors.

    The anchors are part of the model: their texts live in the config, their token ids in the weights
    (``anchor_input_ids``, ``anchor_attention_mask``). Their latents are cached in eval mode, so inference does not
    re-embed them per batch; in train mode they are re-embedded every ``config.anchor_refresh_steps`` forward calls.
    When the backbone has no trainable parameter, the anchors' pooled backbone outputs are computed once and only the
    adapter runs per step.
    """

    def __init__(self, config: RelativeEncoderConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        if backbone is None:
            backbone = AutoModel.from_config(config.backbone, **without_pooler(config.backbone))
        self.backbone = backbone
        # One config object for the backbone, as in EncoderDecoderModel: ours, with the backbone's attention choice.
        config.backbone._attn_implementation = self.backbone.config._attn_implementation
        self.backbone.config = config.backbone
        self.adapter = build_adapter(config)
        self.projection = RelativeProjection(
            config.latent_size,
            normalization=config.normalization,
            stats=config.stats,
            momentum=config.running_momentum,
            shrinkage=config.whiten_shrinkage,
            eps=config.eps,
        )
        num_anchors = config.num_anchors
        self.register_buffer("anchor_input_ids", torch.zeros(num_anchors, config.anchor_max_length, dtype=torch.long))
        self.register_buffer(
            "anchor_attention_mask", torch.zeros(num_anchors, config.anchor_max_length, dtype=torch.long)
        )
        self._anchor_latent_cache: torch.Tensor | None = None
        self._anchor_feature_cache: torch.Tensor | None = None
        self._anchor_feature_override: torch.Tensor | None = None
        self._forward_calls = 0
        self.post_init()

    # ---------------------------------------------------------------- anchors
    def set_anchors(
        self, anchor_texts: list[str], tokenizer: PreTrainedTokenizerBase, *, anchor_set_id: str | None = None
    ) -> None:
        """Tokenize and store a new anchor set (texts in the config, token ids in the weights).

        Args:
            anchor_texts: the anchors, in order; at least 2.
            tokenizer: the backbone's tokenizer.
            anchor_set_id: name of the parallel anchor set these belong to (see `RelativeEncoderConfig`).
        """
        anchor_texts = list(anchor_texts)
        check_anchor_count(len(anchor_texts))
        if any(not isinstance(text, str) or not text.strip() for text in anchor_texts):
            raise AnchorError("Every anchor must be a non-empty string; drop empty anchors (and their counterparts).")
        if self.config.num_anchors and len(anchor_texts) != self.config.num_anchors:
            raise AnchorError(
                f"This model was built for {self.config.num_anchors} anchors, got {len(anchor_texts)}: the head's "
                "input size is the number of anchors. Build a new model for a different anchor count."
            )
        encoded = tokenizer(
            [self.config.anchor_text_prefix + text for text in anchor_texts],
            padding="max_length",
            truncation=True,
            max_length=self.config.anchor_max_length,
            return_tensors="pt",
        )
        device = self.anchor_input_ids.device
        self.anchor_input_ids = encoded["input_ids"].to(device)
        self.anchor_attention_mask = encoded["attention_mask"].to(device)
        self.config.anchor_texts = anchor_texts
        self.config.anchor_fingerprint = anchor_fingerprint(anchor_texts)
        if anchor_set_id is not None:
            self.config.anchor_set_id = anchor_set_id
        self.clear_anchor_cache()

    def set_anchor_features(self, features: torch.Tensor | None) -> None:
        """Use precomputed pooled backbone outputs of the anchors instead of running the backbone on them.

        For training on cached features of a frozen backbone (see ``backbone_features`` in `forward`): the anchors
        then cost one adapter call per step. Ignored as soon as any backbone parameter requires grad, since the
        features would be stale. `None` goes back to embedding the anchors with the backbone.

        Args:
            features: ``[num_anchors, backbone hidden size]``, pooled like the model's inputs.
        """
        if features is not None:
            expected = (self.config.num_anchors, self.config.backbone.hidden_size)
            if tuple(features.shape) != expected:
                raise AnchorError(
                    f"Anchor features must have shape {expected} (anchors × backbone hidden size), got "
                    f"{tuple(features.shape)}."
                )
            features = features.detach().to(self.anchor_input_ids.device)
        self._anchor_feature_override = features
        self.clear_anchor_cache()

    def clear_anchor_cache(self) -> None:
        """Forget cached anchor latents; call after changing weights in place while in eval mode."""
        self._anchor_latent_cache = None
        self._anchor_feature_cache = None
        self._forward_calls = 0

    def train(self, mode: bool = True):
        if mode != self.training:  # Trainer calls model.train() every step: keep the caches unless the mode changes
            self.clear_anchor_cache()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_anchor_cache()
        super()._load_from_state_dict(*args, **kwargs)

    def _backbone_is_frozen(self) -> bool:
        return not any(param.requires_grad for param in self.backbone.parameters())

    def _anchor_features(self) -> torch.Tensor:
        """Pooled backbone outputs of the anchors, in chunks, trimmed to the longest real anchor."""
        if self._anchor_feature_override is not None and self._backbone_is_frozen():
            # A plain attribute, not a buffer: follow the model when it moves to another device.
            self._anchor_feature_override = self._anchor_feature_override.to(self.anchor_input_ids.device)
            return self._anchor_feature_override
        if self.config.num_anchors == 0:
            raise AnchorError(
                "This model has no anchors. Build it with RelativeModelForSequenceClassification."
                "from_backbone_pretrained(..., anchor_texts=[...]) or call model.set_anchors(texts, tokenizer)."
            )
        mask = self.anchor_attention_mask
        if not bool(mask.any(dim=1).all()):
            raise AnchorError(
                "Anchor token ids are missing: call set_anchors(texts, tokenizer) before using the model."
            )
        length = int(mask.sum(1).max())
        features = []
        for start in range(0, mask.shape[0], ANCHOR_CHUNK_SIZE):
            ids = self.anchor_input_ids[start : start + ANCHOR_CHUNK_SIZE, :length]
            chunk_mask = mask[start : start + ANCHOR_CHUNK_SIZE, :length]
            hidden = self.backbone(input_ids=ids, attention_mask=chunk_mask).last_hidden_state
            features.append(pool(hidden, chunk_mask, self.config.pooling))
        return torch.cat(features)

    def anchor_latents(self) -> torch.Tensor:
        """The anchor latents ``[num_anchors, latent_size]``, from cache when the weights cannot have changed."""
        if not self.training:
            if self._anchor_latent_cache is None:
                with torch.no_grad():
                    self._anchor_latent_cache = self.adapter(self._anchor_features())
            return self._anchor_latent_cache
        if self._backbone_is_frozen():
            if self._anchor_feature_cache is None:
                with torch.no_grad():
                    self._anchor_feature_cache = self._anchor_features()
            return self.adapter(self._anchor_feature_cache)
        refresh = self._anchor_latent_cache is None or self._forward_calls % self.config.anchor_refresh_steps == 0
        if refresh:
            latents = self.adapter(self._anchor_features())
            self._anchor_latent_cache = latents.detach()
            return latents
        return self._anchor_latent_cache

    # ---------------------------------------------------------------- forward
    def encode(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Latents z of a batch; `backbone_features` (pooled backbone outputs) skips the backbone."""
        if backbone_features is not None:
            return self.adapter(backbone_features), None
        if input_ids is None and inputs_embeds is None:
            raise ConfigurationError("Pass input_ids (or inputs_embeds, or precomputed backbone_features).")
        backbone_kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None:
            backbone_kwargs["token_type_ids"] = token_type_ids
        if output_hidden_states:
            backbone_kwargs["output_hidden_states"] = True
        if output_attentions:
            backbone_kwargs["output_attentions"] = True
        outputs = self.backbone(**backbone_kwargs)
        return self.adapter(pool(outputs.last_hidden_state, attention_mask, self.config.pooling)), outputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> RelativeModelOutput:
        latents, outputs = self.encode(
            input_ids, attention_mask, token_type_ids, inputs_embeds, backbone_features, output_hidden_states,
            output_attentions,
        )  # fmt: skip
        relative = anchors = None
        if self.config.representation == "relative":
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
