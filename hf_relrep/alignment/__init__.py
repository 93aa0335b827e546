"""Alignment between two latent spaces: diagnostics of how alike they are, translations fitted on anchors, and
embedding alignments that let one model's queries search another model's corpus."""

from .diagnostics import cka, compare_latents, knn_jaccard, relative_agreement
from .embedding_alignment import EmbeddingAlignment
from .retrieval import AlignmentQualityWarning, RetrievalQuality, SearchResult, search
from .translation import LatentTranslation, fit_translation, register_translation_method


__all__ = [
    "AlignmentQualityWarning",
    "EmbeddingAlignment",
    "LatentTranslation",
    "RetrievalQuality",
    "SearchResult",
    "cka",
    "compare_latents",
    "fit_translation",
    "knn_jaccard",
    "register_translation_method",
    "relative_agreement",
    "search",
]
