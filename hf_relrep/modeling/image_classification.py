"""`RelativeModelForImageClassification`: an image classifier whose head reads relative representations."""

from typing import Any

import torch

from .classifier import RelativeClassifierBase
from .outputs import RelativeSequenceClassifierOutput


class RelativeModelForImageClassification(RelativeClassifierBase):
    """An image classifier on any vision backbone AutoModel loads (ViT, DINOv2, CLIP's vision tower, Swin, ConvNeXt,
    ResNet, ...), whose head reads similarities to anchor images.

    The anchor images are saved with the model as ``uint8`` arrays (``anchors.safetensors``) with its image processor,
    and processed again on load: `AutoModelForImageClassification.from_pretrained(folder)` and
    ``pipeline("image-classification", model=folder)`` need nothing else.

    Example:

    ```python
    >>> from hf_relrep import RelativeModelForImageClassification
    >>> model = RelativeModelForImageClassification.from_backbone_pretrained(
    ...     "facebook/dinov2-small", anchor_images=anchor_images, num_labels=10
    ... )
    >>> model.save_pretrained("my-relative-vision-model")
    ```
    """

    modality_name = "image"
    main_input_name = "pixel_values"

    @classmethod
    def from_backbone_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        *,
        anchor_images: list[Any] | None = None,
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
    ) -> "RelativeModelForImageClassification":
        """Wrap a pretrained vision backbone (local folder or Hub id) in a new relative image classifier.

        Args:
            pretrained_model_name_or_path: any vision model `AutoModel` can load.
            anchor_images: anchor images (≥ 2): PIL images (converted to RGB) or H×W×C ``uint8`` arrays.
            num_labels / id2label: the label set.
            normalization, stats, representation: see [`RelativeEncoderConfig`].
            pooling: ``"cls"`` (default for backbones with a CLS token: ViT, DINOv2, CLIP), ``"mean"`` (default
                otherwise: the mean over patches, or global average pooling of a ConvNeXt/ResNet feature map),
                ``"max"`` or ``"pooler"`` (the backbone's own pooled output).
            processor: defaults to `AutoImageProcessor.from_pretrained(pretrained_model_name_or_path)`.
            anchor_set_id: name of the anchor set (models with the same anchor images stitch without one).
            backbone_kwargs: passed to `AutoModel.from_pretrained` (e.g. `revision`, `dtype`).
            **config_kwargs: any other [`RelativeEncoderConfig`] field.

        Raises:
            BackboneError: AutoModel cannot load the backbone. ModalityError: it is not a vision backbone.
            ProcessorError: no image processor is saved with the backbone and none is given.
        """
        return cls.build_from_backbone(
            pretrained_model_name_or_path,
            anchors=anchor_images,
            num_labels=num_labels,
            id2label=id2label,
            normalization=normalization,
            stats=stats,
            pooling=pooling,
            representation=representation,
            processor=processor,
            anchor_set_id=anchor_set_id,
            backbone_kwargs=backbone_kwargs,
            **config_kwargs,
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> RelativeSequenceClassifierOutput | tuple:
        """Classify a batch of ``pixel_values`` (from the model's image processor)."""
        return self.classify(
            labels=labels,
            backbone_features=backbone_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=return_dict,
            pixel_values=pixel_values,
        )


__all__ = ["RelativeModelForImageClassification"]
