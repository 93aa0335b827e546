"""Relative-representation models, wrapped around any backbone.

Data flows one way: input → backbone → pooling → (adapter) → latent z → relative transform against the anchors → head
→ logits. `RelativeModel` is the encoder side (backbone, pooling, anchors, normalization); the task models put a head
on it.
"""

from .base import RelativePreTrainedModel
from .encoder import ANCHOR_CHUNK_SIZE, RelativeModel
from .heads import ClassificationHead, build_adapter
from .loading import PICKLE_SUFFIXES, offers_only_pickle, without_pooler
from .outputs import RelativeModelOutput, RelativeSequenceClassifierOutput
from .sequence_classification import RelativeModelForSequenceClassification


__all__ = [
    "ANCHOR_CHUNK_SIZE",
    "PICKLE_SUFFIXES",
    "ClassificationHead",
    "RelativeModel",
    "RelativeModelForSequenceClassification",
    "RelativeModelOutput",
    "RelativePreTrainedModel",
    "RelativeSequenceClassifierOutput",
    "build_adapter",
    "offers_only_pickle",
    "without_pooler",
]
