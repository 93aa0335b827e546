"""Zero-shot stitching: the encoder side of one model with the head of another.

`relative` stitches relative classifiers on the anchors they carry; `translated` stitches absolute classifiers through
a latent translation fitted on parallel anchors.
"""

from .relative import AbsoluteStitchingWarning, check_stitchable, load_relative_model, stitch
from .translated import compare_spaces, stitch_with_translation


__all__ = [
    "AbsoluteStitchingWarning",
    "check_stitchable",
    "compare_spaces",
    "load_relative_model",
    "stitch",
    "stitch_with_translation",
]
