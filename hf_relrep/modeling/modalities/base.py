"""What differs between modalities, in one small interface: input names, anchors, processor, default pooling.

The encoder side (`RelativeModel`) is the same for every modality; it asks its `Modality` how to turn raw anchors into
backbone inputs, which inputs a batch may carry, and which mask the pooling reads. Adding a modality is one file with
one `Modality` subclass, registered in `hf_relrep.modeling.modalities`.
"""

import functools
import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ...anchors.identity import anchor_fingerprint
from ...errors import ModalityError, ProcessorError


# Every input name some modality reads: a model of one modality refuses the names of the others.
ALL_INPUT_NAMES = ("input_ids", "inputs_embeds", "token_type_ids", "pixel_values", "input_values", "input_features")


@functools.lru_cache(maxsize=256)
def forward_accepts(module_class: type, name: str) -> bool:
    """Whether ``module_class.forward`` takes an argument called `name` (or ``**kwargs``)."""
    parameters = inspect.signature(module_class.forward).parameters
    return name in parameters


class Modality:
    """One input modality. Subclasses set the class attributes and override the anchor methods.

    Attributes:
        name: ``"text"``, ``"image"``, ``"audio"``.
        main_input_names: the backbones' ``main_input_name`` values that mean this modality.
        input_names: the inputs a batch of this modality may carry (besides ``attention_mask``).
        anchor_argument: the name of the anchors argument of ``from_backbone_pretrained``.
        processor_kind: what the processor is called, for messages.
        task_class: the classifier for this modality, for messages.
        stores_arrays: raw anchors are arrays kept in ``anchors.safetensors`` (not texts in the config).
    """

    name: str = ""
    main_input_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    anchor_argument: str = ""
    processor_kind: str = ""
    task_class: str = ""
    stores_arrays: bool = False
    default_pooling: str = "mean"

    # ---------------------------------------------------------------- processor
    def auto_processor_class(self) -> Any:
        raise NotImplementedError

    def load_processor(self, source: Any, **hub_kwargs: Any) -> Any:
        """The processor saved with `source` (a folder or a Hub id), or a `ProcessorError` that says what to pass."""
        auto = self.auto_processor_class()
        try:
            return auto.from_pretrained(source, **hub_kwargs)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ProcessorError(
                f"{source} has no {self.processor_kind} that {auto.__name__} can load ({error}). Pass one: "
                f"processor={auto.__name__}.from_pretrained(<the backbone's folder or Hub id>)."
            ) from error

    def check_processor(self, processor: Any) -> None:
        """Refuse a processor of another modality (a tokenizer for an image model, ...)."""

    # ---------------------------------------------------------------- anchors
    def prepare_anchors(self, anchors: Any, processor: Any, options: dict[str, Any]) -> list[Any]:
        """Validated raw anchors, in the form they are stored; `AnchorError` naming the first bad one."""
        raise NotImplementedError

    def fingerprint(self, anchors: list[Any]) -> str:
        """`anchor_fingerprint` of the raw anchors alone (texts, or each array's dtype, shape and bytes)."""
        return anchor_fingerprint(anchors)

    def store_metadata(self, options: dict[str, Any]) -> dict[str, str]:
        """Metadata saved with array anchors (strings only)."""
        return {}

    def options_from_metadata(self, metadata: dict[str, str]) -> dict[str, Any]:
        return {}

    def attach(self, encoder: Any, anchors: list[Any], processor: Any, options: dict[str, Any]) -> None:
        """Keep validated anchors on the encoder (array modalities keep them as they are)."""
        encoder.raw_anchors = anchors
        encoder.anchor_options = dict(options)

    def anchor_batches(self, encoder: Any, chunk_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """Backbone inputs of the anchors, in chunks: ``(anchor indices, inputs)``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- inputs
    def describe_inputs(self) -> str:
        return " or ".join(self.input_names)

    def check_inputs(self, encoder: Any, inputs: dict[str, Any]) -> None:
        """Refuse inputs of another modality, saying what this model reads."""
        foreign = [name for name in ALL_INPUT_NAMES if name in inputs and name not in self.input_names]
        if foreign:
            raise ModalityError(
                f"This model's backbone ({encoder.config.backbone.model_type}) reads {self.name}: pass "
                f"{self.describe_inputs()} (from its {self.processor_kind}), not {', '.join(foreign)}."
            )
        if not any(name in inputs for name in self.input_names if name != "token_type_ids"):
            raise ModalityError(
                f"Pass {self.describe_inputs()} (from the model's {self.processor_kind}), or precomputed "
                "backbone_features."
            )

    def backbone_kwargs(self, encoder: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """The backbone's arguments for a batch of validated inputs."""
        return dict(inputs)

    def pooling_mask(self, encoder: Any, outputs: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        """``[batch, seq]`` mask of the positions pooling may read, ``None`` for all."""
        return None

    def prefix_tokens(self, backbone: Any) -> int:
        """Leading non-content tokens of the backbone's output (CLS, registers), left out of mean pooling."""
        return 0

    def pick_pooling(self, backbone: Any) -> str:
        """The pooling used when none is given."""
        return self.default_pooling


def to_device_inputs(inputs: dict[str, Any], encoder: Any) -> dict[str, torch.Tensor]:
    """Processor outputs on the encoder's device; floating tensors in the backbone's dtype."""
    device, dtype = encoder.device, encoder.backbone.dtype
    moved = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        moved[key] = value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
    return moved


__all__ = ["ALL_INPUT_NAMES", "Modality", "forward_accepts", "to_device_inputs"]
