"""Where one side of a stitch comes from: loading it, hashing its state, and describing it for provenance.

Both kinds of stitching read their sources through here: `load_relative_model` for relative stitching, and
`load_classifier` (ours or any BERT-like or RoBERTa-like ``*ForSequenceClassification``) for translated stitching and
`compare_spaces`. `describe_source` is the entry a stitched model's ``config.provenance`` records per side.
"""

import hashlib
import os
from typing import Any

import torch
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from ..configuration import RelativeEncoderConfig
from ..errors import StitchingError
from ..modeling import RelativeClassifierBase, relative_classifier_class
from ..modeling.loading import is_local_path, load_config, safe_from_pretrained


ModelSource = PreTrainedModel | str | os.PathLike
"""A side of a stitch: a loaded model, a local folder or a Hub id."""


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
    """A relative classifier from a model instance, a local folder or a Hub id (at an optional revision).

    Raises:
        StitchingError: the source is another kind of model.
    """
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


def load_classifier(
    source: ModelSource, *, revision: str | None = None, token: str | bool | None = None
) -> PreTrainedModel:
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


def describe_source(
    model: PreTrainedModel,
    source: ModelSource,
    revision: str | None,
    part: torch.nn.Module,
    *,
    any_classifier: bool = False,
) -> dict:
    """Where one side of a stitch came from: source, base model, revision, resolved commit and a content hash of the
    part the stitched model keeps.

    Args:
        model: the loaded side.
        source: what it was loaded from (for an instance, its config's ``name_or_path``).
        revision: the Hub revision asked for.
        part: the module the stitched model takes from it (encoder side or head), hashed by `state_fingerprint`.
        any_classifier: the side may be any transformers classifier (a half of a translated stitch): name its
            class, and when its config names no base model, name what it was loaded from.
    """
    origin = source if not isinstance(source, PreTrainedModel) else (model.config.name_or_path or None)
    base_model = getattr(model.config, "base_model", None)
    entry = {"source": str(origin) if origin else None, "base_model": base_model}
    if any_classifier:
        entry["base_model"] = base_model or model.config.name_or_path or None
        entry["architecture"] = type(model).__name__
    entry["content_sha256"] = state_fingerprint(part)
    if revision is not None:
        entry["revision"] = revision
    commit = getattr(model, "_hub_commit", None)
    if commit is not None:
        entry["commit"] = commit
    return entry


__all__ = ["ModelSource", "describe_source", "load_classifier", "load_relative_model", "state_fingerprint"]
