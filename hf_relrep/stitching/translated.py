"""Stitching absolute classifiers through a latent translation fitted on parallel anchors.

`stitch_translated(encoder_from=X, head_from=Y, translation="orthogonal", anchors=...)`: both encoders embed the
parallel anchors, a `LatentTranslation` (`hf_relrep.alignment.translation`) is fitted from X's latents to Y's, and the
result is a `TranslatedModelForSequenceClassification` (`hf_relrep.modeling.translated`: X's encoder half →
translation → Y's head half) that saves, pushes and loads like any other model.
"""

import copy
from typing import Any

import torch

from ..alignment.diagnostics import compare_latents
from ..alignment.translation import fit_translation
from ..configuration import TranslatedStitchConfig, anchor_fingerprint
from ..errors import AnchorError, StitchingError
from ..modeling.translated import ABSOLUTE_KINDS, TranslatedModelForSequenceClassification, absolute_kind
from .latents import ParallelAnchors, parallel_fingerprint, parallel_texts, text_latents
from .sources import ModelSource, describe_source, load_classifier


def stitch_translated(
    encoder_from: ModelSource,
    head_from: ModelSource,
    *,
    translation: str = "orthogonal",
    anchors: ParallelAnchors | None = None,
    anchor_latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    anchor_set_id: str | None = None,
    encoder_tokenizer: Any = None,
    head_tokenizer: Any = None,
    encoder_revision: str | None = None,
    head_revision: str | None = None,
    token: str | bool | None = None,
    share_weights: bool = False,
    report: bool = False,
) -> TranslatedModelForSequenceClassification:
    """`encoder_from`'s encoder half → a translation fitted on parallel anchors → `head_from`'s head half.

    Stitches two *absolute* classifiers — ours with ``representation="absolute"``, or BERT-like and RoBERTa-like
    ``*ForSequenceClassification`` models — trained on the same labels. Relative classifiers stitch without a
    translation (`hf_relrep.stitch`).

    Args:
        encoder_from: a classifier, a local folder or a Hub id.
        head_from: likewise.
        translation: ``"orthogonal"``, ``"linear"`` or ``"affine"`` (`hf_relrep.fit_translation`).
        anchors: the parallel anchor texts, one list for both models or a pair (texts for the encoder model, texts
            for the head model); each model embeds its side.
        anchor_latents: ``(encoder-side latents [k, d_X], head-side latents [k, d_Y])`` instead of `anchors` (e.g.
            from cached features).
        anchor_set_id: the name of the anchor set, recorded in the config and the card.
        encoder_tokenizer, head_tokenizer: for models that come without their tokenizer.
        encoder_revision, head_revision: Hub revisions (branch, tag or commit) of the two sources.
        token: Hub token for private repositories.
        share_weights: reuse the sources' parameter and buffer tensors instead of copying them.
        report: compare the two spaces on the anchors (`hf_relrep.compare_latents`) and record it in
            ``config.provenance["report"]`` and the model card.

    Raises:
        AnchorError: neither or both of `anchors` and `anchor_latents`, or anchor lists of different lengths.
        StitchingError: different label sets, a relative classifier, or a classifier whose head cannot be split off.

    Example:

    ```python
    >>> from hf_relrep import stitch_translated
    >>> model = stitch_translated("me/absolute-fr", "me/absolute-en", translation="orthogonal", anchors=(fr, en))
    ```
    """
    if (anchors is None) == (anchor_latents is None):
        raise AnchorError(
            "Stitching with a translation needs parallel anchors: pass anchors=[texts] (or a pair (texts for the "
            "encoder model, texts for the head model)), or anchor_latents=(source, target); not both."
        )
    encoder_model = load_classifier(encoder_from, revision=encoder_revision, token=token)
    head_model = load_classifier(head_from, revision=head_revision, token=token)
    encoder_kind, head_kind = absolute_kind(encoder_model), absolute_kind(head_model)
    encoder_labels, head_labels = dict(encoder_model.config.id2label), dict(head_model.config.id2label)
    if sorted(encoder_labels.items()) != sorted(head_labels.items()):
        raise StitchingError(
            f"The label sets differ: encoder model {encoder_labels} vs head {head_labels}. Stitch classifiers trained "
            "on the same labels (same ids and names)."
        )
    tokenizer = None
    if anchor_latents is not None:
        source, target = anchor_latents
        fingerprint = anchor_fingerprint([source.detach().cpu(), target.detach().cpu()])
    else:
        texts_x, texts_y = parallel_texts(anchors)
        source, tokenizer = text_latents(
            encoder_model, encoder_from, texts_x, encoder_tokenizer, revision=encoder_revision, token=token
        )
        target, _ = text_latents(head_model, head_from, texts_y, head_tokenizer, revision=head_revision, token=token)
        fingerprint = parallel_fingerprint(texts_x, texts_y)
    fitted = fit_translation(source.float(), target.float(), method=translation)

    config = TranslatedStitchConfig(
        encoder=copy.deepcopy(encoder_model.config),
        head=copy.deepcopy(head_model.config),
        encoder_kind=encoder_kind,
        head_kind=head_kind,
        translation=translation,
        source_dim=fitted.source_dim,
        target_dim=fitted.target_dim,
        num_anchors=int(source.shape[0]),
        anchor_set_id=anchor_set_id,
        anchor_fingerprint=fingerprint,
        id2label=head_labels,
    )
    encoder_half = ABSOLUTE_KINDS[encoder_kind].encoder_of(encoder_model)
    head_half = ABSOLUTE_KINDS[head_kind].head_of(head_model)
    with torch.device("meta"):  # every part is replaced below: build nothing for real
        stitched = TranslatedModelForSequenceClassification(config)
    memo = {}
    if share_weights:
        for tensor in [*encoder_half.parameters(), *encoder_half.buffers(), *head_half.parameters()]:
            memo[id(tensor)] = tensor
    stitched.encoder = copy.deepcopy(encoder_half, memo)
    stitched.head = copy.deepcopy(head_half, memo)
    stitched.translation = fitted.to(next(encoder_half.parameters()).device)
    stitched.tokenizer = tokenizer
    config.provenance = {
        "encoder": describe_source(encoder_model, encoder_from, encoder_revision, encoder_half, any_classifier=True),
        "head": describe_source(head_model, head_from, head_revision, head_half, any_classifier=True),
        "anchor_set_id": anchor_set_id,
        "translation": {"method": translation, "num_anchors": config.num_anchors, "anchor_fingerprint": fingerprint},
    }
    if report:
        config.provenance["report"] = compare_latents(source, target)
    return stitched.eval()


__all__ = ["stitch_translated"]
