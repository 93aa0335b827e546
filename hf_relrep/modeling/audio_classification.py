"""`RelativeModelForAudioClassification`: an audio classifier whose head reads relative representations."""

from typing import Any

import torch

from .classifier import RelativeClassifierBase
from .outputs import RelativeSequenceClassifierOutput


class RelativeModelForAudioClassification(RelativeClassifierBase):
    """An audio classifier on any audio backbone AutoModel loads: waveform models reading ``input_values``
    (Wav2Vec2, HuBERT, WavLM, ...) and Whisper-style encoder-decoders reading ``input_features`` (their encoder).

    The anchor waveforms are saved with the model (``anchors.safetensors``, float32, with their sampling rate) with its
    feature extractor: ``pipeline("audio-classification", model=folder)`` needs nothing else.

    Example:

    ```python
    >>> from hf_relrep import RelativeModelForAudioClassification
    >>> model = RelativeModelForAudioClassification.from_backbone_pretrained(
    ...     "facebook/wav2vec2-base", anchor_audio=anchor_waveforms, sampling_rate=16000, num_labels=10
    ... )
    ```
    """

    modality_name = "audio"
    main_input_name = "input_values"

    @classmethod
    def from_backbone_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        anchor_audio: list[Any] | None = None,
        sampling_rate: int = 16000,
        num_labels: int | None = None,
        id2label: dict[int, str] | None = None,
        normalization: str = "robust",
        stats: str = "anchors",
        pooling: str | None = None,
        representation: str = "relative",
        processor: Any = None,
        anchor_set_id: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> "RelativeModelForAudioClassification":
        """Wrap a pretrained audio backbone (local folder or Hub id) in a new relative audio classifier.

        Args:
            pretrained_model_name_or_path: any audio model `AutoModel` can load (Whisper: its encoder).
            anchor_audio: anchor waveforms (≥ 2), 1-D float arrays at `sampling_rate`.
            sampling_rate: of the anchors; must be the feature extractor's.
            num_labels / id2label: the label set.
            normalization, stats, representation: see [`RelativeEncoderConfig`].
            pooling: ``"mean"`` over frames (default, as `Wav2Vec2ForSequenceClassification`), ``"max"``, ``"cls"``.
            processor: defaults to `AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path)`.
            anchor_set_id, backbone_kwargs, **config_kwargs: as for the other classifiers.

        Raises:
            BackboneError: AutoModel cannot load the backbone. ModalityError: it is not an audio backbone.
            ProcessorError: no feature extractor is saved with the backbone and none is given.
            AnchorError: anchors at another sampling rate than the feature extractor's, or malformed (named).
        """
        return cls.build_from_backbone(
            pretrained_model_name_or_path,
            anchors=anchor_audio,
            num_labels=num_labels,
            id2label=id2label,
            normalization=normalization,
            stats=stats,
            pooling=pooling,
            representation=representation,
            processor=processor,
            anchor_set_id=anchor_set_id,
            backbone_kwargs=backbone_kwargs,
            sampling_rate=sampling_rate,
            **config_kwargs,
        )

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> RelativeSequenceClassifierOutput | tuple:
        """Classify a batch of ``input_values`` (waveform backbones) or ``input_features`` (Whisper's encoder)."""
        return self.classify(
            labels=labels,
            backbone_features=backbone_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=return_dict,
            input_values=input_values,
            input_features=input_features,
            attention_mask=attention_mask,
        )


__all__ = ["RelativeModelForAudioClassification"]
