"""Stitching absolute models through a fitted latent translation, and comparing two models' spaces.

`stitch(encoder_from=X, head_from=Y, translation="orthogonal", anchors=...)` (`hf_relrep.stitching.stitch`) lands
here: both encoders embed the parallel anchors, a `LatentTranslation` is fitted from X's latents to Y's, and the
result is a `TranslatedModelForSequenceClassification` (X's encoder half → translation → Y's head half) that saves,
pushes and loads like any other model. `compare_spaces` reports how alike two models' spaces are on the anchors
(`hf_relrep.alignment.diagnostics.compare_latents`).
"""

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ..alignment.diagnostics import compare_latents
from ..alignment.translation import fit_translation
from ..configuration import RelativeEncoderConfig, anchor_fingerprint
from ..errors import AnchorError, StitchingError
from ..modeling import RelativeClassifierBase
from ..modeling.absolute_sides import ABSOLUTE_KINDS, RelativeLatents, absolute_kind, embed_with, text_settings
from ..modeling.loading import is_local_path, safe_from_pretrained
from ..modeling.translated import TranslatedModelForSequenceClassification, TranslatedStitchConfig
from .relative import load_relative_model, state_fingerprint


ParallelAnchors = Sequence[str] | tuple[Sequence[str], Sequence[str]]


def load_classifier(source, *, revision: str | None = None, token: str | bool | None = None) -> PreTrainedModel:
    """A classifier from an instance, a local folder or a Hub id: ours through `load_relative_model`, any other
    ``*ForSequenceClassification`` through `AutoModelForSequenceClassification` (safetensors only, checked)."""
    if isinstance(source, PreTrainedModel):
        return source
    config = AutoConfig.from_pretrained(source, revision=revision, token=token)
    if isinstance(config, RelativeEncoderConfig):
        return load_relative_model(source, revision=revision, token=token)
    model = safe_from_pretrained(
        AutoModelForSequenceClassification.from_pretrained, source, what="classifier", revision=revision, token=token
    )
    if not is_local_path(source):
        model._hub_commit = HfApi().model_info(str(source), revision=revision, token=token).sha
    return model.eval()


def resolve_tokenizer(model: PreTrainedModel, source, given, *, revision: str | None, token) -> Any:
    """The tokenizer that embeds anchor texts for `model`: `given`, the model's own, or one saved with its source or
    its base model.

    Raises:
        StitchingError: none of these has a tokenizer.
    """
    if given is not None:
        return given
    if getattr(model, "processor", None) is not None:
        return model.processor
    candidates = [] if isinstance(source, PreTrainedModel) else [(source, revision)]
    for name in (getattr(model.config, "base_model", None), getattr(model.config, "name_or_path", None)):
        if name:
            candidates.append((name, None))
    for candidate, candidate_revision in candidates:
        try:
            return AutoTokenizer.from_pretrained(candidate, revision=candidate_revision, token=token)
        except (OSError, ValueError):
            continue
    raise StitchingError(
        f"No tokenizer found for the {type(model).__name__} (looked at {[c for c, _ in candidates]}): pass "
        "encoder_tokenizer= / head_tokenizer= (for compare_spaces, tokenizers=(a, b)), or anchor_latents=."
    )


def parallel_texts(anchors: ParallelAnchors) -> tuple[list[str], list[str]]:
    """``(texts for the first model, texts for the second)``: one list for both, or a pair of parallel lists."""
    if isinstance(anchors, str):
        raise AnchorError("anchors is one string; pass a list of anchor texts, or a pair (texts_a, texts_b).")
    if isinstance(anchors, tuple) and len(anchors) == 2 and not isinstance(anchors[0], str):
        first, second = list(anchors[0]), list(anchors[1])
    else:
        first = second = list(anchors)
    if len(first) != len(second):
        raise AnchorError(
            f"{len(first)} and {len(second)} anchor texts: anchor i of one model must be the counterpart of anchor i "
            "of the other (the same sentence, or its translation)."
        )
    return first, second


def latent_encoder(model: PreTrainedModel) -> torch.nn.Module:
    """The module that gives `model`'s latents (ours: the encoder side, relative or absolute)."""
    if isinstance(model, RelativeClassifierBase):
        return RelativeLatents(model.encoder)
    return ABSOLUTE_KINDS[absolute_kind(model)].encoder_of(model)


def text_latents(model, source, texts: list[str], tokenizer, *, revision, token) -> tuple[torch.Tensor, Any]:
    tokenizer = resolve_tokenizer(model, source, tokenizer, revision=revision, token=token)
    prefix, max_length = text_settings(model, tokenizer)
    return embed_with(latent_encoder(model), tokenizer, texts, prefix=prefix, max_length=max_length), tokenizer


def describe(model: PreTrainedModel, source, revision: str | None, part: torch.nn.Module) -> dict:
    """Where one half came from: source, base model, revision, resolved commit and a content hash of the half."""
    origin = source if not isinstance(source, PreTrainedModel) else (model.config.name_or_path or None)
    entry = {
        "source": str(origin) if origin else None,
        "base_model": getattr(model.config, "base_model", None) or model.config.name_or_path or None,
        "architecture": type(model).__name__,
        "content_sha256": state_fingerprint(part),
    }
    if revision is not None:
        entry["revision"] = revision
    if getattr(model, "_hub_commit", None) is not None:
        entry["commit"] = model._hub_commit
    return entry


def parallel_fingerprint(first: list[str], second: list[str]) -> str:
    """``sha256`` of the ordered (first, second) text pairs."""
    payload = json.dumps(list(zip(first, second, strict=True)), ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def stitch_with_translation(
    encoder_from,
    head_from,
    *,
    translation: str,
    anchors: ParallelAnchors | None = None,
    anchor_latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    anchor_set_id: str | None = None,
    encoder_revision: str | None = None,
    head_revision: str | None = None,
    token: str | bool | None = None,
    share_weights: bool = False,
    encoder_tokenizer: Any = None,
    head_tokenizer: Any = None,
    report: bool = False,
) -> TranslatedModelForSequenceClassification:
    """`encoder_from`'s encoder half → a translation fitted on parallel anchors → `head_from`'s head half.

    See `hf_relrep.stitch` for the arguments. ``anchor_latents=(source [k, d_X], target [k, d_Y])`` skips embedding
    (e.g. cached features); otherwise `anchors` are embedded by both encoders (texts for X, texts for Y).
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
        "encoder": describe(encoder_model, encoder_from, encoder_revision, encoder_half),
        "head": describe(head_model, head_from, head_revision, head_half),
        "anchor_set_id": anchor_set_id,
        "translation": {"method": translation, "num_anchors": config.num_anchors, "anchor_fingerprint": fingerprint},
    }
    if report:
        config.provenance["report"] = compare_latents(source, target)
    return stitched.eval()


def anchor_latent_pair(encoder_model: RelativeClassifierBase, head_model: RelativeClassifierBase):
    """The anchor latents of two relative models' encoder sides, in eval mode, without gradient."""
    latents = []
    for model in (encoder_model, head_model):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                latents.append(model.encoder.anchor_latents().float().cpu())
        finally:
            model.train(was_training)
    return tuple(latents)


def compare_spaces(
    model_a,
    model_b,
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


__all__ = [
    "anchor_latent_pair",
    "compare_spaces",
    "load_classifier",
    "parallel_texts",
    "resolve_tokenizer",
    "stitch_with_translation",
]
