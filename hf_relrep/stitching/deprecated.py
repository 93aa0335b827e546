"""The 0.1 spellings of translated stitching, kept working with a `FutureWarning` that names the new function.

``stitch(..., translation=..., anchors=...)`` returned a `TranslatedModelForSequenceClassification`; `stitch` now
returns relative classifiers only and `stitch_translated` builds translated stitches. The `stitch` exported by
`hf_relrep` and `hf_relrep.stitching` is `hf_relrep.stitching.relative.stitch` behind the wrapper below, which forwards
a call with the translation-only arguments to `stitch_translated`. Remove this module with the deprecation.
"""

import functools
import warnings
from typing import Any

from ..errors import StitchingError
from ..modeling import RelativeClassifierBase
from ..modeling.translated import TranslatedModelForSequenceClassification
from . import relative, translated
from .sources import ModelSource


TRANSLATION_ONLY = ("translation", "anchors", "anchor_latents", "anchor_set_id", "encoder_tokenizer", "head_tokenizer")
"""Arguments of the 0.1 `stitch` that only `stitch_translated` takes now."""


@functools.wraps(relative.stitch, assigned=("__doc__", "__name__", "__qualname__", "__annotations__"))
def stitch(
    encoder_from: ModelSource, head_from: ModelSource, **kwargs: Any
) -> RelativeClassifierBase | TranslatedModelForSequenceClassification:
    legacy = {name: kwargs.pop(name) for name in TRANSLATION_ONLY if name in kwargs}
    legacy = {name: value for name, value in legacy.items() if value is not None}
    if not legacy:
        return relative.stitch(encoder_from, head_from, **kwargs)
    if "translation" not in legacy:
        raise StitchingError(
            f"{', '.join(f'{name}=' for name in legacy)} are for stitching absolute models through a translation: "
            "stitch_translated(encoder_from, head_from, translation=..., anchors=...). Relative models stitch on the "
            "anchors they carry."
        )
    warnings.warn(
        "stitch(..., translation=...) is deprecated: call stitch_translated(encoder_from, head_from, "
        "translation=..., anchors=...) instead (same arguments, without the relative-only ones); stitch() now "
        "returns relative classifiers only.",
        FutureWarning,
        stacklevel=2,
    )
    return translated.stitch_translated(encoder_from, head_from, **legacy, **kwargs)


def stitch_with_translation(
    encoder_from: ModelSource, head_from: ModelSource, *, translation: str, **kwargs: Any
) -> TranslatedModelForSequenceClassification:
    """Deprecated name of `stitch_translated` (same arguments)."""
    warnings.warn(
        "stitch_with_translation is deprecated: call stitch_translated (same arguments).", FutureWarning, stacklevel=2
    )
    return translated.stitch_translated(encoder_from, head_from, translation=translation, **kwargs)


__all__ = ["TRANSLATION_ONLY", "stitch", "stitch_with_translation"]
