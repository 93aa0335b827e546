"""How alike two models' latent spaces are on parallel anchors, before (or without) stitching them."""

from typing import Any

from ..alignment.diagnostics import compare_latents
from ..errors import AnchorError
from ..modeling import RelativeClassifierBase
from .latents import ParallelAnchors, anchor_latent_pair, parallel_texts, text_latents
from .sources import ModelSource, load_classifier


def compare_spaces(
    model_a: ModelSource,
    model_b: ModelSource,
    anchors: ParallelAnchors | None = None,
    *,
    tokenizers: tuple[Any, Any] = (None, None),
    k: int = 10,
    revisions: tuple[str | None, str | None] = (None, None),
    token: str | bool | None = None,
) -> dict:
    """How alike two models' latent spaces are on parallel anchors: `compare_latents`' report (CKA, kNN-Jaccard,
    agreement of vanilla/robust/whiten relative vectors).

    Args:
        model_a, model_b: classifiers (ours, relative or absolute; BERT- or RoBERTa-like), folders or Hub ids.
        anchors: texts for both, or a pair (texts for a, texts for b); ``None`` for two relative models uses their
            own anchor sets (which must be parallel: same length).
        tokenizers: for models without a tokenizer of their own.
        k: neighbours for kNN-Jaccard.
        revisions, token: Hub revisions and token.

    Raises:
        AnchorError: no anchors for models that carry none, or anchor sets of different sizes.

    Example:

    ```python
    >>> from hf_relrep import compare_spaces
    >>> report = compare_spaces("me/relrep-en", "me/relrep-fr")
    >>> report["cka_linear"], report["relative"]["robust"]["cosine"]
    ```
    """
    a = load_classifier(model_a, revision=revisions[0], token=token)
    b = load_classifier(model_b, revision=revisions[1], token=token)
    if anchors is None:
        if not (isinstance(a, RelativeClassifierBase) and isinstance(b, RelativeClassifierBase)):
            raise AnchorError("Only relative models carry anchors of their own; pass anchors= texts for these models.")
        latents_a, latents_b = anchor_latent_pair(a, b)
    else:
        texts_a, texts_b = parallel_texts(anchors)
        latents_a, _ = text_latents(a, model_a, texts_a, tokenizers[0], revision=revisions[0], token=token)
        latents_b, _ = text_latents(b, model_b, texts_b, tokenizers[1], revision=revisions[1], token=token)
    if latents_a.shape[0] != latents_b.shape[0]:
        raise AnchorError(
            f"The models hold {latents_a.shape[0]} and {latents_b.shape[0]} anchors: compare them on a parallel set "
            "(anchors=...)."
        )
    return compare_latents(latents_a, latents_b, k=k)


__all__ = ["compare_spaces"]
