"""Zero-shot model stitching: the encoder side of one relative model with the head of another, no training."""

import copy
import hashlib
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from huggingface_hub import HfApi
from transformers import PreTrainedModel

from ..alignment.diagnostics import compare_latents
from ..configuration import RelativeEncoderConfig
from ..errors import StitchingError
from ..modeling import RelativeClassifierBase, RelativeModelForSequenceClassification, relative_classifier_class
from ..modeling.loading import load_config
from ..modeling.translated import TranslatedModelForSequenceClassification


ModelSource = RelativeClassifierBase | str | os.PathLike


class AbsoluteStitchingWarning(UserWarning):
    """Absolute representations of two separately trained models are not aligned: expect chance-level accuracy."""


def _tensor_digest(tensor: torch.Tensor) -> bytes:
    """sha256 of one tensor's bytes, remembered on the tensor until it is modified in place (its `_version`)."""
    cached = getattr(tensor, "_hf_relrep_digest", None)
    if cached is not None and cached[0] == tensor._version:
        return cached[1]
    data = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.sha256(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"").digest()
    tensor._hf_relrep_digest = (tensor._version, digest)
    return digest


def state_fingerprint(module: torch.nn.Module) -> str:
    """``sha256`` over a module's state (names, dtypes, shapes and bytes, in name order): a content hash.

    Per-tensor digests are remembered until a tensor changes, so fingerprinting many models that share a frozen
    backbone hashes the backbone once.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(_tensor_digest(tensor))
    return "sha256:" + digest.hexdigest()


def load_relative_model(
    source: ModelSource, *, revision: str | None = None, token: str | bool | None = None, **kwargs: Any
) -> RelativeClassifierBase:
    """A relative classifier from a model instance, a local folder or a Hub id (at an optional revision)."""
    if isinstance(source, PreTrainedModel):
        if not isinstance(source, RelativeClassifierBase):
            raise StitchingError(
                f"Only relative classifiers stitch; got a {type(source).__name__}. Wrap the backbone with "
                "RelativeModelForSequenceClassification.from_backbone_pretrained(...) and train its head first."
            )
        return source
    # A missing folder is named, not looked up on the Hub; a damaged config says so.
    config = load_config(source, revision=revision, token=token)
    if not isinstance(config, RelativeEncoderConfig):
        raise StitchingError(
            f"{source} holds a {config.model_type!r} model, not a relative classifier ('hf-relrep'). Wrap its backbone "
            "with RelativeModelForSequenceClassification.from_backbone_pretrained(...) and train a head first."
        )
    model = relative_classifier_class(config).from_pretrained(
        source, config=config, revision=revision, token=token, **kwargs
    )
    if not os.path.isdir(source):  # a Hub id: record the exact commit it resolved to
        model._hub_commit = HfApi().model_info(str(source), revision=revision, token=token).sha
    return model


def _describe(model: RelativeModelForSequenceClassification, source: ModelSource, revision: str | None, part) -> dict:
    origin = source if not isinstance(source, PreTrainedModel) else (model.config.name_or_path or None)
    entry = {
        "source": str(origin) if origin else None,
        "base_model": model.config.base_model,
        "content_sha256": state_fingerprint(part),
    }
    if revision is not None:
        entry["revision"] = revision
    commit = getattr(model, "_hub_commit", None)
    if commit is not None:
        entry["commit"] = commit
    return entry


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
            "accuracy. This is the baseline the relative representation is compared with; stitch(..., "
            "translation='orthogonal', anchors=...) fits a map between the spaces instead.",
            AbsoluteStitchingWarning,
            stacklevel=3,
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
            stacklevel=3,
        )


def stitch(
    encoder_from: ModelSource,
    head_from: ModelSource,
    *,
    encoder_revision: str | None = None,
    head_revision: str | None = None,
    token: str | bool | None = None,
    share_weights: bool = False,
    translation: str | None = None,
    anchors: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
    anchor_latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    anchor_set_id: str | None = None,
    encoder_tokenizer: Any = None,
    head_tokenizer: Any = None,
    report: bool = False,
) -> RelativeClassifierBase | TranslatedModelForSequenceClassification:
    """Combine the encoder side of one relative classifier with the head of another, without training.

    The result has `encoder_from`'s backbone, pooling, adapter, anchors and normalization statistics, and
    `head_from`'s classification head and labels. Its `config.provenance` records both sources, their revisions and
    content hashes; it saves, pushes and loads like any other relative model.

    Args:
        encoder_from: a `RelativeModelForSequenceClassification`, a local folder or a Hub id.
        head_from: likewise.
        encoder_revision, head_revision: Hub revisions (branch, tag or commit) of the two sources.
        token: Hub token for private repositories.
        share_weights: reuse the sources' parameter and buffer tensors instead of copying them (new modules and
            config, same storage): cheap when evaluating many pairs on large backbones. Training the result then
            changes the sources too.
        translation: stitch two *absolute* classifiers — ours with ``representation="absolute"``, or BERT-like and
            RoBERTa-like ``*ForSequenceClassification`` models — through a latent translation fitted on parallel
            anchors: ``"orthogonal"``, ``"linear"`` or ``"affine"`` (`hf_relrep.fit_translation`). The result is a
            `TranslatedModelForSequenceClassification` (encoder half → translation → head half).
        anchors: with `translation`: the parallel anchor texts, one list for both models or a pair (texts for the
            encoder model, texts for the head model); each model embeds its side.
        anchor_latents: with `translation`: ``(encoder-side latents [k, d_X], head-side latents [k, d_Y])`` instead
            of `anchors` (e.g. from cached features).
        anchor_set_id: with `translation`: the name of the anchor set, recorded in the config and the card.
        encoder_tokenizer, head_tokenizer: with `translation`, for models that come without their tokenizer.
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
    if translation is not None:
        from .translated import stitch_with_translation  # builds on this module: resolved at call time

        return stitch_with_translation(
            encoder_from, head_from, translation=translation, anchors=anchors, anchor_latents=anchor_latents,
            anchor_set_id=anchor_set_id, encoder_revision=encoder_revision, head_revision=head_revision, token=token,
            share_weights=share_weights, encoder_tokenizer=encoder_tokenizer, head_tokenizer=head_tokenizer,
            report=report,
        )  # fmt: skip
    if anchors is not None or anchor_latents is not None:
        raise StitchingError(
            "anchors= and anchor_latents= are for stitching absolute models with translation=...; relative models "
            "stitch on the anchors they carry."
        )
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
        "encoder": _describe(encoder_model, encoder_from, encoder_revision, encoder_model.encoder),
        "head": _describe(head_model, head_from, head_revision, head_model.head),
        "anchor_set_id": encoder_model.config.anchor_set_id,
    }
    if report and encoder_model.config.representation == "relative":
        from .translated import anchor_latent_pair

        config.provenance["report"] = compare_latents(*anchor_latent_pair(encoder_model, head_model))
    stitched.eval()
    return stitched


__all__ = ["AbsoluteStitchingWarning", "check_stitchable", "load_relative_model", "state_fingerprint", "stitch"]
