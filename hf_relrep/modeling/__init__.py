"""Relative-representation models, wrapped around any backbone.

Data flows one way: input → backbone → pooling → (adapter) → latent z → relative transform against the anchors → head
→ logits. `RelativeModel` is the encoder side (backbone, pooling, anchors, normalization); the task models put a head
on it. Importing this package registers the model types with the transformers Auto classes (`.registration`).
"""

from ..anchors.storage import ANCHORS_FILE
from .audio_classification import RelativeModelForAudioClassification
from .base import RelativePreTrainedModel
from .classifier import RelativeClassifierBase, relative_classifier_class
from .encoder import ANCHOR_CHUNK_SIZE, RelativeModel
from .heads import ClassificationHead, build_adapter
from .image_classification import RelativeModelForImageClassification
from .loading import PICKLE_SUFFIXES, offers_only_pickle, without_pooler
from .outputs import RelativeModelOutput, RelativeSequenceClassifierOutput
from .registration import register_auto_classes
from .sequence_classification import RelativeModelForSequenceClassification


__all__ = [
    "ANCHORS_FILE",
    "ANCHOR_CHUNK_SIZE",
    "PICKLE_SUFFIXES",
    "ClassificationHead",
    "RelativeClassifierBase",
    "RelativeModel",
    "RelativeModelForAudioClassification",
    "RelativeModelForImageClassification",
    "RelativeModelForSequenceClassification",
    "RelativeModelOutput",
    "RelativePreTrainedModel",
    "RelativeSequenceClassifierOutput",
    "build_adapter",
    "offers_only_pickle",
    "relative_classifier_class",
    "register_auto_classes",
    "without_pooler",
]
