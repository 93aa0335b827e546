"""Relative-representation models: an encoder side (`RelativeModel`) and a head side, wrapped around any backbone.

Data flows one way: text → backbone → pooling → (adapter) → latent z → relative transform against the anchors → head
→ logits. The encoder side owns the backbone, the pooling, the anchors and the normalization; the head only reads the
relative vector, so the head of one model can sit on the encoder side of another (`hf_relrep.stitch`).
"""

import copy
import inspect
import os
from dataclasses import dataclass
from typing import Any

import huggingface_hub
import torch
from huggingface_hub import HfApi
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.auto_factory import _get_model_class
from transformers.utils import ModelOutput

from .configuration import RelativeEncoderConfig, anchor_fingerprint
from .errors import AnchorError, ConfigurationError, UnsafeCheckpointError
from .hub import RelativeHubMixin, verify_cached_files
from .pooling import pool
from .projection import RelativeProjection


ANCHOR_CHUNK_SIZE = 64


@dataclass
class RelativeModelOutput(ModelOutput):
    """Output of the encoder side.

    Args:
        latents: ``[batch, latent_size]`` the pooled (and adapted) latents z.
        relative: ``[batch, num_anchors]`` the relative representation (``None`` in absolute mode).
        anchor_latents: ``[num_anchors, latent_size]`` the anchor latents used for this batch.
        hidden_states, attentions: passed through from the backbone when asked for.
    """

    latents: torch.Tensor | None = None
    relative: torch.Tensor | None = None
    anchor_latents: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class RelativeSequenceClassifierOutput(ModelOutput):
    """Output of [`RelativeModelForSequenceClassification`].

    Args:
        loss: classification loss when `labels` are given.
        logits: ``[batch, num_labels]``.
        latents: ``[batch, latent_size]`` latents z (what densification "pre" acts on).
        relative: ``[batch, num_anchors]`` relative vectors (what densification "post" acts on); ``None`` in absolute
            mode.
        hidden_states, attentions: passed through from the backbone when asked for.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    relative: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class RelativePreTrainedModel(PreTrainedModel):
    """Shared loading and initialization logic; backbone modules keep their own initialization."""

    config_class = RelativeEncoderConfig
    config: RelativeEncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    # forward() takes no **kwargs: Trainer scales the loss for gradient accumulation itself.
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *args,
        use_safetensors: bool | None = None,
        verify_checksums: bool = True,
        **kwargs,
    ):
        """As `PreTrainedModel.from_pretrained`, with two safety checks.

        - Safetensors only unless `use_safetensors=False` is passed: a pickle checkpoint (``pytorch_model.bin``) can run
          arbitrary code when loaded; opt in explicitly, and only for sources you trust.
        - From the Hub, the downloaded weights and config are checked against the Hub's checksums
          (`hf_relrep.hub.verify_cached_files`; huggingface_hub itself only checks sizes). A corrupted file raises
          `CorruptDownloadError` and is removed from the cache. `verify_checksums=False` skips the check, and so does
          offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``), where there is no Hub to ask.
        """
        try:
            model = super().from_pretrained(
                pretrained_model_name_or_path, *args, use_safetensors=True if use_safetensors is None else use_safetensors,
                **kwargs,
            )  # fmt: skip
        except OSError as error:
            if use_safetensors is None and _offers_only_pickle(pretrained_model_name_or_path, kwargs):
                raise UnsafeCheckpointError(
                    f"{pretrained_model_name_or_path} has no safetensors weights, only a pickle checkpoint. hf-relrep "
                    "does not load pickles by default; pass use_safetensors=False to opt in (only for sources you "
                    "trust), or convert the checkpoint to safetensors."
                ) from error
            raise
        offline = huggingface_hub.constants.HF_HUB_OFFLINE or kwargs.get("local_files_only")
        if verify_checksums and not offline and not os.path.isdir(pretrained_model_name_or_path):
            verify_cached_files(
                str(pretrained_model_name_or_path), revision=kwargs.get("revision"), token=kwargs.get("token"),
                cache_dir=kwargs.get("cache_dir"),
            )  # fmt: skip
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_hf_relrep_default_init", False):
            # The adapter keeps PyTorch's Kaiming-uniform init: with transformers' std 0.02 its GELU would start in
            # its near-linear range, and two adapters would differ by little more than a linear map.
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RelativeProjection):
            module.reset_running_stats()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def _offers_only_pickle(source: str | os.PathLike, kwargs: dict[str, Any]) -> bool:
    """Whether `source` (a folder or a Hub repo) has pickle weights and no safetensors weights."""
    if os.path.isdir(source):
        files = [name for _, _, names in os.walk(source) for name in names]
    else:
        try:
            files = HfApi().list_repo_files(str(source), revision=kwargs.get("revision"), token=kwargs.get("token"))
        except Exception:  # the original loading error is the one worth showing
            return False
    return not any(f.endswith(".safetensors") for f in files) and any(f.endswith(PICKLE_SUFFIXES) for f in files)


def _without_pooler(backbone_config: PreTrainedConfig) -> dict[str, Any]:
    """`add_pooling_layer=False` for backbones that take it (BERT, RoBERTa, ...): we pool ourselves."""
    model_class = _get_model_class(backbone_config, AutoModel._model_mapping)
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class).parameters else {}


def _build_adapter(config: RelativeEncoderConfig) -> nn.Module:
    hidden = config.backbone.hidden_size
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
            backbone = AutoModel.from_config(config.backbone, **_without_pooler(config.backbone))
        self.backbone = backbone
        # One config object for the backbone, as in EncoderDecoderModel: ours, with the backbone's attention choice.
        config.backbone._attn_implementation = self.backbone.config._attn_implementation
        self.backbone.config = config.backbone
        self.adapter = _build_adapter(config)
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
        if len(anchor_texts) < 2:
            raise AnchorError(f"A relative model needs at least 2 anchors, got {len(anchor_texts)}.")
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
        if config.representation == "relative" and config.num_anchors < 2:
            raise AnchorError(
                "A relative classifier needs at least 2 anchors: pass anchor_texts to the config, or use "
                "from_backbone_pretrained(..., anchor_texts=[...])."
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
        backbone_kwargs = dict(backbone_kwargs or {})
        hub_kwargs = {
            key: backbone_kwargs[key] for key in ("revision", "token", "cache_dir") if key in backbone_kwargs
        }
        backbone_config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        backbone = AutoModel.from_pretrained(
            pretrained_model_name_or_path, **{**_without_pooler(backbone_config), **backbone_kwargs}
        )
        if representation == "relative" and (anchor_texts is None or len(anchor_texts) < 2):
            raise AnchorError(
                "A relative model needs anchor_texts with at least 2 sentences; pass representation='absolute' for "
                "the baseline without anchors."
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


__all__ = [
    "ClassificationHead",
    "RelativeModel",
    "RelativeModelForSequenceClassification",
    "RelativeModelOutput",
    "RelativePreTrainedModel",
    "RelativeSequenceClassifierOutput",
]
