"""Zero-shot model stitching: the encoder side of one relative model with the head of another, no training.

`stitch` returns a relative classifier; absolute classifiers stitch through a fitted latent translation instead
(`hf_relrep.stitching.translated.stitch_translated`).
"""

import copy
import sys
import warnings

from ..alignment.diagnostics import compare_latents
from ..configuration import RelativeEncoderConfig
from ..errors import StitchingError
from ..modeling import RelativeClassifierBase
from .latents import anchor_latent_pair
from .sources import ModelSource, describe_source, load_relative_model


class AbsoluteStitchingWarning(UserWarning):
    """Absolute representations of two separately trained models are not aligned: expect chance-level accuracy."""


def _caller_stacklevel() -> int:
    """The `stacklevel` that points a warning raised here at the first caller outside `hf_relrep.stitching`
    (whether it called `check_stitchable`, `stitch`, or `stitch` through the package's deprecation wrapper)."""
    level, frame = 2, sys._getframe(2)  # level 1: the function that warns; 2: its caller
    while frame is not None and frame.f_globals.get("__name__", "").startswith(f"{__package__}."):
        level, frame = level + 1, frame.f_back
    return level


def check_stitchable(encoder_config: RelativeEncoderConfig, head_config: RelativeEncoderConfig) -> None:
    """Raise a `StitchingError` that says why and what would fix it, when the two sides do not correspond."""
    if encoder_config.representation != head_config.representation:
        raise StitchingError(
            f"The encoder model is {encoder_config.representation!r} but the head reads {head_config.representation!r}"
            " representations; stitch two relative models (or two absolute ones)."
        )
    if sorted(encoder_config.id2label.items()) != sorted(head_config.id2label.items()):
        raise StitchingError(
            f"The label sets differ: encoder model {encoder_config.id2label} vs head {head_config.id2label}. Train both "
            "heads on the same labels (same ids and names)."
        )
    if encoder_config.representation == "absolute":
        if encoder_config.latent_size != head_config.latent_size:
            raise StitchingError(
                f"Absolute stitching needs equal latent sizes; got {encoder_config.latent_size} (encoder) and "
                f"{head_config.latent_size} (head). Use relative models: they stitch across sizes."
            )
        warnings.warn(
            "Stitching absolute representations: the two latent spaces are not aligned, so expect chance-level "
            "accuracy. This is the baseline the relative representation is compared with; stitch_translated(..., "
            "translation='orthogonal', anchors=...) fits a map between the spaces instead.",
            AbsoluteStitchingWarning,
            stacklevel=_caller_stacklevel(),
        )
        return
    if encoder_config.num_anchors != head_config.num_anchors:
        raise StitchingError(
            f"The encoder model has {encoder_config.num_anchors} anchors but the head reads {head_config.num_anchors}"
            " relative coordinates. Both models must use the same parallel anchor set."
        )
    # The same raw anchors: equal texts (the fingerprint also covers each model's token ids, which differ between
    # tokenizers), or for image/audio anchors the same fingerprint of the raw arrays.
    same_texts = (
        encoder_config.anchor_texts == head_config.anchor_texts
        if encoder_config.anchor_texts is not None
        else encoder_config.anchor_fingerprint == head_config.anchor_fingerprint
    )
    declared = encoder_config.anchor_set_id is not None and encoder_config.anchor_set_id == head_config.anchor_set_id
    if not (same_texts or declared):
        raise StitchingError(
            "The anchor sets are not declared parallel: anchor_set_id is "
            f"{encoder_config.anchor_set_id!r} (encoder) vs {head_config.anchor_set_id!r} (head) and the anchor texts "
            "differ. If anchor i of one model is the translation of anchor i of the other, build both with the same "
            "anchor_set_id (from_backbone_pretrained(..., anchor_set_id=...))."
        )
    if encoder_config.normalization != head_config.normalization:
        raise StitchingError(
            f"The head was trained on normalization={head_config.normalization!r} but the encoder model produces "
            f"{encoder_config.normalization!r} relative vectors; stitch models trained with the same normalization."
        )
    if encoder_config.similarity != head_config.similarity:
        raise StitchingError(
            f"The head was trained on similarity={head_config.similarity!r} but the encoder model produces "
            f"{encoder_config.similarity!r} relative vectors; stitch models built with the same similarity."
        )
    if encoder_config.stats != head_config.stats:
        warnings.warn(
            f"The encoder model's statistics come from {encoder_config.stats!r}, the head's from "
            f"{head_config.stats!r}: relative vectors may be distributed differently from what the head saw.",
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )


def stitch(
    encoder_from: ModelSource,
    head_from: ModelSource,
    *,
    encoder_revision: str | None = None,
    head_revision: str | None = None,
    token: str | bool | None = None,
    share_weights: bool = False,
    report: bool = False,
) -> RelativeClassifierBase:
    """Combine the encoder side of one relative classifier with the head of another, without training.

    The result has `encoder_from`'s backbone, pooling, adapter, anchors and normalization statistics, and
    `head_from`'s classification head and labels. Its `config.provenance` records both sources, their revisions and
    content hashes; it saves, pushes and loads like any other relative model. Absolute classifiers (ours with
    ``representation="absolute"``, BERT-like, RoBERTa-like) stitch through a fitted translation with
    `stitch_translated` instead.

    Args:
        encoder_from: a relative classifier (e.g. `RelativeModelForSequenceClassification`), a local folder or a Hub
            id.
        head_from: likewise.
        encoder_revision, head_revision: Hub revisions (branch, tag or commit) of the two sources.
        token: Hub token for private repositories.
        share_weights: reuse the sources' parameter and buffer tensors instead of copying them (new modules and
            config, same storage): cheap when evaluating many pairs on large backbones. Training the result then
            changes the sources too.
        report: compare the two spaces on the anchors (`hf_relrep.compare_latents`: CKA, kNN-Jaccard, relative
            agreement) and record it in ``config.provenance["report"]`` and the model card.

    Raises:
        StitchingError: different anchor counts, anchor sets not declared parallel, different label sets, a head
            trained on another normalization, or absolute models of different sizes.

    Example:

    ```python
    >>> from hf_relrep import stitch
    >>> french_encoder_english_head = stitch(encoder_from="me/relrep-fr", head_from="me/relrep-en")
    ```
    """
    encoder_model = load_relative_model(encoder_from, revision=encoder_revision, token=token)
    head_model = load_relative_model(head_from, revision=head_revision, token=token)
    check_stitchable(encoder_model.config, head_model.config)

    memo = {}
    if share_weights:
        for tensor in [*encoder_model.parameters(), *encoder_model.buffers(), *head_model.head.parameters()]:
            memo[id(tensor)] = tensor
        processor = encoder_model.encoder.processor  # shared too: deep-copying a tokenizer costs ~0.5 s
        if processor is not None:
            memo[id(processor)] = processor
    stitched = copy.deepcopy(encoder_model, memo)
    stitched.head = copy.deepcopy(head_model.head, memo)
    config = stitched.config
    for field in ("head", "head_hidden_size", "classifier_dropout", "id2label", "label2id", "problem_type"):
        setattr(config, field, copy.deepcopy(getattr(head_model.config, field)))
    config.provenance = {
        "encoder": describe_source(encoder_model, encoder_from, encoder_revision, encoder_model.encoder),
        "head": describe_source(head_model, head_from, head_revision, head_model.head),
        "anchor_set_id": encoder_model.config.anchor_set_id,
    }
    if report and encoder_model.config.representation == "relative":
        config.provenance["report"] = compare_latents(*anchor_latent_pair(encoder_model, head_model))
    stitched.eval()
    return stitched


__all__ = ["AbsoluteStitchingWarning", "check_stitchable", "stitch"]
