"""hf-relrep: relative representations and zero-shot model stitching for Hugging Face Transformers.

Importing the package registers the model types ``"hf-relrep"`` (relative classifiers of text, images and audio) and
``"hf-relrep-translated"`` (absolute models stitched through a latent translation) with `AutoConfig`, `AutoModel` and
the `AutoModelFor{Sequence,Image,Audio}Classification` classes, so saved models load through the Auto classes without
``trust_remote_code``. Nothing else happens on import.
"""

import os as _os


# Importing transformers imports torch._dynamo, which writes its default cache folder into TORCHINDUCTOR_CACHE_DIR.
# torch computes the same default again whenever it needs it: give the user's environment back as it was.
_INDUCTOR_CACHE_WAS_SET = "TORCHINDUCTOR_CACHE_DIR" in _os.environ

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from .alignment.diagnostics import cka, compare_latents, knn_jaccard
from .alignment.translation import LatentTranslation, fit_translation
from .anchors.selection import select_anchors
from .configuration import RelativeEncoderConfig, anchor_fingerprint
from .errors import (
    AnchorError,
    BackboneError,
    ConfigurationError,
    CorruptCheckpointError,
    CorruptDownloadError,
    DataError,
    ModalityError,
    NonFiniteError,
    OfflineEncoderError,
    OutputExistsError,
    ProcessorError,
    RelRepError,
    SourceNotFoundError,
    StatisticsError,
    StitchingError,
    TopologyError,
    UnsafeCheckpointError,
)
from .modeling import (
    RelativeModel,
    RelativeModelForAudioClassification,
    RelativeModelForImageClassification,
    RelativeModelForSequenceClassification,
    RelativeModelOutput,
    RelativeSequenceClassifierOutput,
)
from .modeling.translated import TranslatedModelForSequenceClassification, TranslatedStitchConfig
from .relative.pooling import pool
from .relative.projection import NormalizationStatistics, RelativeProjection, compute_statistics, relative_transform
from .stitching.relative import AbsoluteStitchingWarning, check_stitchable, stitch
from .stitching.translated import compare_spaces
from .topology.densification import death_times_by_class, densification_loss
from .topology.persistence import death_times
from .utils.plotting import plot_death_time_histograms
from .version import __version__


# The trainer pulls in transformers.Trainer, accelerate and datasets (seconds of import time): load it on first use.
_LAZY = {
    name: ".training"
    for name in ("ClassBalancedBatchSampler", "DensificationLoss", "TopoTrainer", "TopoTrainingArguments")
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


AutoConfig.register(RelativeEncoderConfig.model_type, RelativeEncoderConfig, exist_ok=True)
AutoModel.register(RelativeEncoderConfig, RelativeModel, exist_ok=True)
AutoModelForSequenceClassification.register(
    RelativeEncoderConfig, RelativeModelForSequenceClassification, exist_ok=True
)
AutoModelForImageClassification.register(RelativeEncoderConfig, RelativeModelForImageClassification, exist_ok=True)
AutoModelForAudioClassification.register(RelativeEncoderConfig, RelativeModelForAudioClassification, exist_ok=True)
AutoConfig.register(TranslatedStitchConfig.model_type, TranslatedStitchConfig, exist_ok=True)
AutoModelForSequenceClassification.register(
    TranslatedStitchConfig, TranslatedModelForSequenceClassification, exist_ok=True
)

if not _INDUCTOR_CACHE_WAS_SET:
    _os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)

__all__ = [
    "__version__",
    "AbsoluteStitchingWarning",
    "AnchorError",
    "BackboneError",
    "ClassBalancedBatchSampler",
    "ConfigurationError",
    "CorruptCheckpointError",
    "CorruptDownloadError",
    "DataError",
    "DensificationLoss",
    "LatentTranslation",
    "ModalityError",
    "NonFiniteError",
    "NormalizationStatistics",
    "OfflineEncoderError",
    "OutputExistsError",
    "ProcessorError",
    "RelRepError",
    "RelativeEncoderConfig",
    "RelativeModel",
    "RelativeModelForAudioClassification",
    "RelativeModelForImageClassification",
    "RelativeModelForSequenceClassification",
    "RelativeModelOutput",
    "RelativeProjection",
    "RelativeSequenceClassifierOutput",
    "SourceNotFoundError",
    "StatisticsError",
    "StitchingError",
    "TopoTrainer",
    "TopoTrainingArguments",
    "TopologyError",
    "TranslatedModelForSequenceClassification",
    "TranslatedStitchConfig",
    "UnsafeCheckpointError",
    "anchor_fingerprint",
    "check_stitchable",
    "cka",
    "compare_latents",
    "compare_spaces",
    "compute_statistics",
    "death_times",
    "death_times_by_class",
    "densification_loss",
    "fit_translation",
    "knn_jaccard",
    "plot_death_time_histograms",
    "pool",
    "relative_transform",
    "select_anchors",
    "stitch",
]
