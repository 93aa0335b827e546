"""hf-relrep: relative representations and zero-shot model stitching for Hugging Face Transformers.

Importing the package registers the model types ``"hf-relrep"`` (relative classifiers of text, images and audio) and
``"hf-relrep-translated"`` (absolute models stitched through a latent translation) with `AutoConfig`, `AutoModel` and
the `AutoModelFor{Sequence,Image,Audio}Classification` classes (`hf_relrep.modeling.registration`), so saved models
load through the Auto classes without ``trust_remote_code``. That imports torch and transformers; everything else
(the trainer, the topology, the alignment tools, plotting) is imported on first use of its name.

The top level holds the models and their configurations, the trainer and the main functions; the errors are in
`hf_relrep.errors` (`RelRepError`, their base, is here too), the building blocks in their folders (`hf_relrep.relative`,
`hf_relrep.anchors`, `hf_relrep.topology`, `hf_relrep.alignment`, `hf_relrep.stitching`, …).
"""

import importlib as _importlib
import os as _os
import sys as _sys
import warnings as _warnings
from typing import TYPE_CHECKING

from .errors import RelRepError
from .utils import moved_modules as _moved_modules


# Public name → the module it is imported from on first use.
_EXPORTS: dict[str, str] = {
    "__version__": ".version",
    # models and their configurations
    "RelativeEncoderConfig": ".configuration",
    "TranslatedStitchConfig": ".configuration",
    "RelativeModel": ".modeling",
    "RelativeModelForSequenceClassification": ".modeling",
    "RelativeModelForImageClassification": ".modeling",
    "RelativeModelForAudioClassification": ".modeling",
    "TranslatedModelForSequenceClassification": ".modeling.translated",
    # training with topological densification
    "TopoTrainer": ".training",
    "TopoTrainingArguments": ".training",
    "DensificationLoss": ".training",
    # the relative representation
    "relative_transform": ".relative",
    "RelativeProjection": ".relative",
    "select_anchors": ".anchors",
    # topology
    "death_times": ".topology",
    "death_times_by_class": ".topology",
    "densification_loss": ".topology",
    # stitching: relative classifiers by `stitch`, absolute ones through a latent translation by `stitch_translated`
    "stitch": ".stitching",
    "stitch_translated": ".stitching",
    "check_stitchable": ".stitching",
    "compare_spaces": ".stitching",
    "AbsoluteStitchingWarning": ".stitching",
    # alignment between two latent spaces
    "compare_latents": ".alignment",
    "cka": ".alignment",
    "knn_jaccard": ".alignment",
    "fit_translation": ".alignment",
    "LatentTranslation": ".alignment",
    # cross-model embedding search: one model's queries against a corpus embedded by another
    "EmbeddingAlignment": ".alignment",
    "AlignmentQualityWarning": ".alignment",
}

# Names that left the top level → the module that keeps them; `hf_relrep.NAME` still works, with a FutureWarning.
_DEPRECATED: dict[str, str] = {
    **{
        name: "hf_relrep.errors"
        for name in (
            "AnchorError",
            "BackboneError",
            "ConfigurationError",
            "CorruptCheckpointError",
            "CorruptDownloadError",
            "DataError",
            "ModalityError",
            "NonFiniteError",
            "OfflineEncoderError",
            "OutputExistsError",
            "ProcessorError",
            "SourceNotFoundError",
            "StatisticsError",
            "StitchingError",
            "TopologyError",
            "UnsafeCheckpointError",
        )
    },
    "ClassBalancedBatchSampler": "hf_relrep.training",
    "NormalizationStatistics": "hf_relrep.relative",
    "RelativeModelOutput": "hf_relrep.modeling",
    "RelativeSequenceClassifierOutput": "hf_relrep.modeling",
    "anchor_fingerprint": "hf_relrep.anchors",
    "compute_statistics": "hf_relrep.relative",
    "plot_death_time_histograms": "hf_relrep.utils.plotting",
    "pool": "hf_relrep.relative",
}


def __getattr__(name: str):
    """Import a public name on first use; warn for a name that left the top level or a module that moved."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    if name in _DEPRECATED:
        _warnings.warn(
            f"hf_relrep.{name} is deprecated: use {_DEPRECATED[name]}.{name} (the top-level name will be removed in "
            "a future release).",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(_importlib.import_module(_DEPRECATED[name]), name)
    moved_to = _moved_modules.MOVED_MODULES.get(f"{__name__}.{name}")
    if moved_to is not None:
        _moved_modules.warn_moved(f"{__name__}.{name}", moved_to, stacklevel=2)
        return _importlib.import_module(moved_to)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see; the same names as _EXPORTS
    from .alignment import (
        AlignmentQualityWarning,
        EmbeddingAlignment,
        LatentTranslation,
        cka,
        compare_latents,
        fit_translation,
        knn_jaccard,
    )
    from .anchors import select_anchors
    from .configuration import RelativeEncoderConfig, TranslatedStitchConfig
    from .modeling import (
        RelativeModel,
        RelativeModelForAudioClassification,
        RelativeModelForImageClassification,
        RelativeModelForSequenceClassification,
    )
    from .modeling.translated import TranslatedModelForSequenceClassification
    from .relative import RelativeProjection, relative_transform
    from .stitching import AbsoluteStitchingWarning, check_stitchable, compare_spaces, stitch, stitch_translated
    from .topology import death_times, death_times_by_class, densification_loss
    from .training import DensificationLoss, TopoTrainer, TopoTrainingArguments
    from .version import __version__


_moved_modules.install()

# The `hf-relrep` console script (`hf_relrep_launcher`) starts without the registration: its commands register the
# model types when they import the models, and `hf-relrep --help` imports neither torch nor transformers.
if "hf_relrep_launcher" not in _sys.modules:
    # Importing transformers imports torch._dynamo, which writes its default cache folder into
    # TORCHINDUCTOR_CACHE_DIR. torch computes the same default again whenever it needs it: give the user's
    # environment back as it was.
    _inductor_cache_was_set = "TORCHINDUCTOR_CACHE_DIR" in _os.environ
    from .modeling import registration as _registration  # noqa: F401  (registers the model types)

    if not _inductor_cache_was_set:
        _os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)

__all__ = ["RelRepError", *sorted(_EXPORTS)]
