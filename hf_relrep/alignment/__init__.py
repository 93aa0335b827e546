"""Alignment between two latent spaces: diagnostics of how alike they are, and translations fitted on anchors."""

from .diagnostics import cka, compare_latents, knn_jaccard, relative_agreement
from .translation import LatentTranslation, fit_translation, register_translation_method


__all__ = [
    "LatentTranslation",
    "cka",
    "compare_latents",
    "fit_translation",
    "knn_jaccard",
    "register_translation_method",
    "relative_agreement",
]
