"""Audio: ``input_values`` (Wav2Vec2, HuBERT, ...) or ``input_features`` (Whisper's encoder) in; anchors as 1-D
``float32`` waveforms in ``anchors.safetensors``, with their sampling rate.

Anchors of equal length are embedded together and others apart, so that no anchor is padded: a padded waveform is
not the same input to a backbone whose feature encoder normalizes over time. Mean pooling reads the frames the
attention mask covers (as `Wav2Vec2ForSequenceClassification` does), or every frame (Whisper pads to 30 s).
"""

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers import AutoFeatureExtractor
from transformers.feature_extraction_utils import FeatureExtractionMixin

from ...errors import AnchorError, ModalityError, ProcessorError
from .base import Modality, forward_accepts, to_device_inputs


DEFAULT_SAMPLING_RATE = 16000


def as_waveform(audio: Any, index: int) -> np.ndarray:
    """One anchor as a 1-D ``float32`` array."""
    if isinstance(audio, str):
        raise ModalityError(
            f"Anchor audio {index} is a string ({audio[:40]!r}): audio anchors are 1-D float arrays (waveforms). For "
            "text anchors, use a text backbone with RelativeModelForSequenceClassification(anchor_texts=...)."
        )
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray) or not np.issubdtype(audio.dtype, np.floating):
        raise AnchorError(
            f"Anchor audio {index} is a {type(audio).__name__} of {getattr(audio, 'dtype', '?')}; pass 1-D float arrays "
            "(waveforms in [-1, 1])."
        )
    if audio.ndim != 1 or audio.size == 0:
        raise AnchorError(
            f"Anchor audio {index} has shape {audio.shape}; pass non-empty 1-D waveforms (average the channels of a "
            "stereo clip: audio.mean(axis=0))."
        )
    if not np.isfinite(audio).all():
        raise AnchorError(f"Anchor audio {index} holds NaN or infinite samples.")
    return np.ascontiguousarray(audio, dtype=np.float32)


class AudioModality(Modality):
    name = "audio"
    main_input_names = ("input_values", "input_features")
    input_names = ("input_values", "input_features")
    anchor_argument = "anchor_audio"
    processor_kind = "feature extractor"
    task_class = "RelativeModelForAudioClassification"
    stores_arrays = True
    default_pooling = "mean"

    def auto_processor_class(self) -> Any:
        return AutoFeatureExtractor

    def check_processor(self, processor: Any) -> None:
        if not isinstance(processor, FeatureExtractionMixin) or not hasattr(processor, "sampling_rate"):
            raise ProcessorError(
                f"An audio backbone needs a feature extractor, got a {type(processor).__name__}; pass "
                "processor=AutoFeatureExtractor.from_pretrained(<backbone>)."
            )

    def prepare_anchors(self, anchors: Any, processor: Any, options: dict[str, Any]) -> list[np.ndarray]:
        rate = options.get("sampling_rate") or DEFAULT_SAMPLING_RATE
        expected = getattr(processor, "sampling_rate", None)
        if expected is not None and int(rate) != int(expected):
            raise AnchorError(
                f"The anchors are sampled at {rate} Hz but the feature extractor expects {expected} Hz; resample them "
                f"to {expected} Hz (e.g. librosa.resample) and pass sampling_rate={expected}."
            )
        options["sampling_rate"] = int(rate)
        return [as_waveform(audio, index) for index, audio in enumerate(anchors)]

    def store_metadata(self, options: dict[str, Any]) -> dict[str, str]:
        return {"sampling_rate": str(options.get("sampling_rate", DEFAULT_SAMPLING_RATE))}

    def options_from_metadata(self, metadata: dict[str, str]) -> dict[str, Any]:
        return {"sampling_rate": int(metadata.get("sampling_rate", DEFAULT_SAMPLING_RATE))}

    def describe_inputs(self) -> str:
        return "input_values (or input_features for Whisper-style encoders)"

    def check_inputs(self, encoder: Any, inputs: dict[str, Any]) -> None:
        super().check_inputs(encoder, inputs)
        wanted = encoder.backbone.main_input_name
        given = [name for name in self.input_names if name in inputs]
        if given != [wanted]:
            raise ModalityError(
                f"This model's backbone ({encoder.config.backbone.model_type}) reads {wanted} (from its feature "
                f"extractor), got {', '.join(given)}."
            )

    def anchor_batches(self, encoder: Any, chunk_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        waveforms = encoder.require_raw_anchors()
        processor = encoder.require_processor()
        rate = encoder.anchor_options.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        by_length = defaultdict(list)
        for index, waveform in enumerate(waveforms):
            by_length[len(waveform)].append(index)
        for indices in by_length.values():
            for start in range(0, len(indices), chunk_size):
                chunk = indices[start : start + chunk_size]
                processed = processor([waveforms[i] for i in chunk], sampling_rate=rate, return_tensors="pt")
                inputs = {encoder.backbone.main_input_name: processed[encoder.backbone.main_input_name]}
                if "attention_mask" in processed:
                    inputs["attention_mask"] = processed["attention_mask"]
                yield chunk, to_device_inputs(self.backbone_kwargs(encoder, inputs), encoder)

    def backbone_kwargs(self, encoder: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(inputs)
        if "attention_mask" in kwargs and not forward_accepts(type(encoder.backbone), "attention_mask"):
            del kwargs["attention_mask"]
        return kwargs

    def pooling_mask(self, encoder: Any, outputs: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        mask = inputs.get("attention_mask")
        frames = getattr(encoder.backbone, "_get_feature_vector_attention_mask", None)
        if mask is None or frames is None or outputs.last_hidden_state.dim() != 3:
            return None
        return frames(outputs.last_hidden_state.shape[1], mask)


AUDIO = AudioModality()

__all__ = ["AUDIO", "AudioModality", "DEFAULT_SAMPLING_RATE", "as_waveform"]
