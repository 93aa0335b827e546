"""`RelativeClassifierBase`: what the sequence, image and audio classifiers share.

A classifier is the encoder side ([`RelativeModel`], any modality) plus a head ([`ClassificationHead`]) that reads
the relative vector. The task classes differ only in the names of their inputs, so that pipelines, Trainer's column
filter and the Auto classes see the signature they expect.
"""

import contextlib
import copy
import os
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedModel

from ..anchors.identity import check_anchor_count
from ..configuration import REPRESENTATIONS, RelativeEncoderConfig
from ..errors import BackboneError, ModalityError, ProcessorError, RelRepError
from ..hub import RelativeHubMixin
from .base import RelativePreTrainedModel
from .encoder import RelativeModel, encoder_of
from .heads import ClassificationHead
from .loading import check_source, load_backbone
from .modalities import MODALITIES, Modality, modality_of
from .outputs import RelativeSequenceClassifierOutput


# Task class of each modality, filled as the classes are defined.
TASK_CLASSES: dict[str, type["RelativeClassifierBase"]] = {}


def relative_classifier_class(config: RelativeEncoderConfig) -> type["RelativeClassifierBase"]:
    """The classifier class for a config's backbone modality (sequence, image or audio classification)."""
    return TASK_CLASSES[modality_of(config.backbone).name]


HUB_KEYS = ("revision", "token", "cache_dir")


def load_backbone_config(source: str | os.PathLike, backbone_kwargs: dict[str, Any]) -> Any:
    """The config of a pretrained backbone, or a typed error that says what to pass instead.

    Raises:
        SourceNotFoundError: a local path that does not exist.
        BackboneError: AutoConfig cannot read `source`.
    """
    check_source(source, "backbone")
    try:
        return AutoConfig.from_pretrained(
            source, **{key: backbone_kwargs[key] for key in HUB_KEYS if key in backbone_kwargs}
        )
    except (OSError, ValueError, KeyError) as error:
        raise BackboneError(
            f"AutoConfig cannot read the backbone {source} ({error}). Pass a folder or Hub id of a transformers "
            "checkpoint (config.json and weights), e.g. 'google/vit-base-patch16-224-in21k' or a folder made by "
            "save_pretrained."
        ) from error


def load_pretrained_encoder(
    source: str | os.PathLike, backbone_config: Any, *, pooling: str | None, backbone_kwargs: dict[str, Any]
) -> tuple[Any, PreTrainedModel]:
    """``(config of the AutoModel, module that embeds inputs)``: an encoder-decoder's encoder, else the AutoModel,
    loaded under hf-relrep's loading rules (`hf_relrep.modeling.loading.load_backbone`: safetensors only unless
    ``backbone_kwargs={"use_safetensors": False}``, Hub checksums verified).

    Raises:
        BackboneError: AutoModel has no model for this architecture, or cannot load the weights.
    """
    modality_of(backbone_config)  # an architecture AutoModel has no model for: BackboneError
    try:
        model = load_backbone(source, config=backbone_config, keep_pooler=pooling == "pooler", **backbone_kwargs)
    except RelRepError:
        raise
    except OSError as error:
        raise BackboneError(
            f"AutoModel cannot load the backbone {source}: {error} Pass a folder or Hub id with the weights of a "
            "transformers model (model.safetensors)."
        ) from error
    return copy.deepcopy(model.config), encoder_of(model)


class RelativeClassifierBase(RelativeHubMixin, RelativePreTrainedModel):
    """A classifier whose head reads relative representations (or, in absolute mode, the latent).

    ``encoder`` is the encoder side ([`RelativeModel`]); ``head`` is the head side ([`ClassificationHead`]).
    Subclasses set `modality_name` and define ``forward`` with their modality's input names.
    """

    modality_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.modality_name and cls.modality_name not in TASK_CLASSES:
            TASK_CLASSES[cls.modality_name] = cls

    def __init__(self, config: RelativeEncoderConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        modality = modality_of(config.backbone)
        self.check_modality(modality, config.backbone.model_type)
        if REPRESENTATIONS[config.representation].uses_anchors:
            check_anchor_count(
                config.num_anchors,
                fix=f"use from_backbone_pretrained(..., {modality.anchor_argument}=[...]), or representation="
                "'absolute' for the baseline without anchors",
            )
        self.encoder = RelativeModel(config, backbone=backbone)
        self.main_input_name = self.encoder.main_input_name
        self.head = ClassificationHead(config)
        self.post_init()

    @classmethod
    def check_modality(cls, modality: Modality, model_type: str) -> None:
        if cls.modality_name and modality.name != cls.modality_name:
            raise ModalityError(
                f"{cls.__name__} reads {cls.modality_name}, but this backbone ({model_type}) reads {modality.name}: "
                f"use {modality.task_class} (anchors as {modality.anchor_argument}=[...]), or its Auto class."
            )

    @property
    def processor(self) -> Any:
        """The tokenizer, image processor or feature extractor of the encoder side (saved with the model)."""
        return self.encoder.processor

    @classmethod
    def build_from_backbone(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        anchors: list[Any] | None,
        num_labels: int | None,
        id2label: dict[int, str] | None,
        normalization: str,
        stats: str,
        pooling: str | None,
        representation: str,
        processor: Any,
        anchor_set_id: str | None,
        backbone_kwargs: dict[str, Any] | None,
        sampling_rate: int | None = None,
        **config_kwargs: Any,
    ) -> "RelativeClassifierBase":
        """The shared body of the task classes' ``from_backbone_pretrained``."""
        argument = MODALITIES[cls.modality_name].anchor_argument if cls.modality_name else "anchors"
        if REPRESENTATIONS[representation].uses_anchors:
            check_anchor_count(
                len(anchors or ()),
                fix=f"pass {argument}, or representation='absolute' for the baseline without anchors",
            )
        backbone_kwargs = dict(backbone_kwargs or {})
        backbone_config = load_backbone_config(pretrained_model_name_or_path, backbone_kwargs)
        cls.check_modality(modality_of(backbone_config), backbone_config.model_type)
        backbone_config, backbone = load_pretrained_encoder(
            pretrained_model_name_or_path, backbone_config, pooling=pooling, backbone_kwargs=backbone_kwargs
        )
        modality = modality_of(backbone_config)
        if id2label is not None:
            config_kwargs["id2label"] = id2label
        elif num_labels is not None:
            config_kwargs["num_labels"] = num_labels
        if anchors is not None and modality.stores_arrays:
            config_kwargs["anchor_count"] = len(anchors)
        elif anchors is not None:
            config_kwargs["anchor_texts"] = list(anchors)
        config = RelativeEncoderConfig(
            backbone=backbone_config,
            anchor_set_id=anchor_set_id,
            normalization=normalization,
            stats=stats,
            pooling=pooling or modality.pick_pooling(backbone),
            representation=representation,
            **config_kwargs,
        )
        model = cls(config, backbone=backbone)
        hub = {key: backbone_kwargs[key] for key in HUB_KEYS if key in backbone_kwargs}
        if processor is None and anchors is not None:
            processor = modality.load_processor(pretrained_model_name_or_path, **hub)
        elif processor is None and modality.stores_arrays:  # no anchors: kept for pipelines when there is one
            with contextlib.suppress(ProcessorError):
                processor = modality.load_processor(pretrained_model_name_or_path, **hub)
        if processor is not None:
            modality.check_processor(processor)
            model.encoder.processor = processor
        if anchors is not None:
            model.encoder.set_anchors(anchors, processor, sampling_rate=sampling_rate)
        model.config.base_model = str(pretrained_model_name_or_path)
        return model

    def classify(
        self,
        labels: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **inputs: torch.Tensor | None,
    ) -> RelativeSequenceClassifierOutput | tuple:
        """Encoder side → head → logits (and the loss when `labels` are given), for inputs of any modality."""
        encoded = self.encoder(
            backbone_features=backbone_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **inputs,
        )
        features = getattr(encoded, REPRESENTATIONS[self.config.representation].reads)
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

    def save_extra_files(self, save_directory: str | os.PathLike) -> None:
        self.encoder.save_extra_files(save_directory)

    def load_extra_files(self, source: str | os.PathLike, *, processor: Any = None, **hub_kwargs: Any) -> None:
        self.encoder.load_extra_files(source, processor=processor, **hub_kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)


__all__ = [
    "TASK_CLASSES",
    "RelativeClassifierBase",
    "load_backbone_config",
    "load_pretrained_encoder",
    "relative_classifier_class",
]
