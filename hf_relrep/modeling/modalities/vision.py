"""Images: ``pixel_values`` in, anchors as ``uint8`` H×W×C arrays in ``anchors.safetensors``.

By default each backbone pools as its architecture's own image classifier does: vision transformers (ViT, DINOv2,
CLIP's vision tower) their CLS token; ConvNeXt and ResNet their pooled output (the global average of the feature map,
layer-normed for ConvNeXt); Swin the mean over its patches. ``"mean"`` on a token sequence
leaves the CLS and register tokens out (the mean over patches, as `CLIPForImageClassification` and DINOv2 take it);
``"pooler"`` reads the backbone's own pooled output.
"""

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor
from transformers.image_processing_utils import BaseImageProcessor

from ...errors import AnchorError, ModalityError, ProcessorError
from .base import Modality, to_device_inputs


# Attributes of a vision embedding module holding a token placed before the patches.
PREFIX_TOKEN_ATTRIBUTES = ("cls_token", "class_embedding", "distillation_token")


def as_image_array(image: Any, index: int) -> np.ndarray:
    """One anchor image as a ``uint8`` H×W×C array (PIL images are converted to RGB)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with transformers' vision extra
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, str):
        raise ModalityError(
            f"Anchor image {index} is a string ({image[:40]!r}): image anchors are PIL images or H×W×C uint8 arrays. "
            "For text anchors, use a text backbone with RelativeModelForSequenceClassification(anchor_texts=...)."
        )
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise AnchorError(
            f"Anchor image {index} is a {type(image).__name__}; pass PIL images or H×W×C uint8 numpy arrays."
        )
    if image.dtype != np.uint8:
        raise AnchorError(
            f"Anchor image {index} has dtype {image.dtype}; pass uint8 pixels (0-255), e.g. "
            "(image * 255).round().astype(np.uint8), so that anchors are stored exactly and compactly."
        )
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise AnchorError(
            f"Anchor image {index} has shape {image.shape}; pass H×W×C arrays with C in (1, 3, 4), channels last "
            "(np.stack([gray] * 3, -1) for a grayscale H×W image)."
        )
    return np.ascontiguousarray(image)


class VisionModality(Modality):
    name = "image"
    main_input_names = ("pixel_values",)
    input_names = ("pixel_values",)
    anchor_argument = "anchor_images"
    processor_kind = "image processor"
    task_class = "RelativeModelForImageClassification"
    stores_arrays = True

    def auto_processor_class(self) -> Any:
        return AutoImageProcessor

    def check_processor(self, processor: Any) -> None:
        if not isinstance(processor, BaseImageProcessor) and not hasattr(processor, "image_processor"):
            raise ProcessorError(
                f"An image backbone needs an image processor, got a {type(processor).__name__}; pass "
                "processor=AutoImageProcessor.from_pretrained(<backbone>)."
            )

    def prefix_tokens(self, backbone: Any) -> int:
        for module in backbone.modules():
            if type(module).__name__.endswith("Embeddings"):
                count = sum(getattr(module, name, None) is not None for name in PREFIX_TOKEN_ATTRIBUTES)
                if count:
                    return count + int(getattr(backbone.config, "num_register_tokens", 0) or 0)
                return 0
        return 0

    def pick_pooling(self, backbone: Any) -> str:
        """What the architecture's own image classifier reads: the CLS token (ViT, DINOv2, CLIP), else the backbone's
        pooled output when it has one (ConvNeXt: layer-normed global average; ResNet: global average), else the mean
        over patches or the global average of the feature map."""
        if self.prefix_tokens(backbone):
            return "cls"
        if "add_pooling_layer" in inspect.signature(type(backbone)).parameters:
            return "mean"  # an optional pooling layer (Swin's: the mean), not built unless pooling="pooler"
        returns = str(inspect.signature(type(backbone).forward).return_annotation)
        return "pooler" if "Pooling" in returns else "mean"

    def prepare_anchors(self, anchors: Any, processor: Any, options: dict[str, Any]) -> list[np.ndarray]:
        return [as_image_array(image, index) for index, image in enumerate(anchors)]

    def anchor_batches(self, encoder: Any, chunk_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        images = encoder.require_raw_anchors()
        processor = encoder.require_processor()
        for start in range(0, len(images), chunk_size):
            stop = min(start + chunk_size, len(images))
            processed = processor(images=list(images[start:stop]), return_tensors="pt")
            yield list(range(start, stop)), to_device_inputs({"pixel_values": processed["pixel_values"]}, encoder)


VISION = VisionModality()

__all__ = ["VISION", "VisionModality", "as_image_array"]
