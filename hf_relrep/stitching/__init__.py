"""Zero-shot stitching: the encoder side of one model with the head of another.

Two floors, no circle. Below: `sources` (loading a side, content fingerprints, provenance entries) and `latents` (two
sides' latents on parallel anchors). Above, each importing only those: `relative` (`stitch`: relative classifiers on
the anchors they carry → a relative classifier), `translated` (`stitch_translated`: absolute classifiers through a
latent translation fitted on parallel anchors → a `TranslatedModelForSequenceClassification`) and `comparison`
(`compare_spaces`). `deprecated` keeps the 0.1 spelling ``stitch(..., translation=...)`` working. The package
exports what the 0.1 modules ``hf_relrep.stitching`` and ``hf_relrep.translated_stitching`` did.
"""

from .comparison import compare_spaces
from .deprecated import stitch, stitch_with_translation
from .latents import anchor_latent_pair, parallel_texts, resolve_tokenizer
from .relative import AbsoluteStitchingWarning, check_stitchable
from .sources import load_classifier, load_relative_model, state_fingerprint
from .translated import stitch_translated


__all__ = [
    "AbsoluteStitchingWarning",
    "anchor_latent_pair",
    "check_stitchable",
    "compare_spaces",
    "load_classifier",
    "load_relative_model",
    "parallel_texts",
    "resolve_tokenizer",
    "state_fingerprint",
    "stitch",
    "stitch_translated",
    "stitch_with_translation",
]
