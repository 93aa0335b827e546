"""The modality registry: one `Modality` per input kind, found from the backbone's ``main_input_name``.

Adding a modality is one file with a `Modality` subclass and one registration in `MODALITIES`
(``MODALITIES.register(modality.name, modality)``, which refuses a taken name).
"""

from transformers import AutoModel, PreTrainedConfig
from transformers.models.auto.auto_factory import _get_model_class

from ...errors import BackboneError
from ...utils.registry import Registry
from .audio import AUDIO, AudioModality
from .base import ALL_INPUT_NAMES, Modality, forward_accepts, to_device_inputs
from .text import TEXT, TextModality, is_decoder_only
from .vision import VISION, VisionModality


MODALITIES: Registry[Modality] = Registry("modality")
MODALITIES.register(TEXT.name, TEXT)
MODALITIES.register(VISION.name, VISION)
MODALITIES.register(AUDIO.name, AUDIO)


def backbone_model_class(backbone_config: PreTrainedConfig) -> type:
    """The class `AutoModel` builds for `backbone_config`, or a `BackboneError` that says what to pass instead."""
    try:
        return _get_model_class(backbone_config, AutoModel._model_mapping)
    except (KeyError, ValueError) as error:
        raise BackboneError(
            f"AutoModel has no model for a {type(backbone_config).__name__} (model_type "
            f"{backbone_config.model_type!r}); wrap a backbone that transformers' AutoModel can load (a BERT, GPT-2, "
            "T5, ViT, ConvNeXt, Wav2Vec2, Whisper, ... checkpoint)."
        ) from error


def modality_of(backbone_config: PreTrainedConfig) -> Modality:
    """The modality of a backbone, from the input its AutoModel class reads first."""
    model_class = backbone_model_class(backbone_config)
    if getattr(backbone_config, "vision_config", None) is not None and getattr(backbone_config, "text_config", None):
        raise BackboneError(
            f"{model_class.__name__} reads two modalities at once; wrap one tower: its vision model (e.g. a "
            "CLIPVisionConfig / CLIPVisionModel checkpoint) for images, or its text model for texts."
        )
    for modality in MODALITIES.values():
        if model_class.main_input_name in modality.main_input_names:
            return modality
    raise BackboneError(
        f"{model_class.__name__} reads {model_class.main_input_name!r}, which no hf-relrep modality handles "
        f"({MODALITIES.choices()})."
    )


__all__ = [
    "ALL_INPUT_NAMES",
    "AUDIO",
    "MODALITIES",
    "TEXT",
    "VISION",
    "AudioModality",
    "Modality",
    "TextModality",
    "VisionModality",
    "backbone_model_class",
    "forward_accepts",
    "is_decoder_only",
    "modality_of",
    "to_device_inputs",
]
