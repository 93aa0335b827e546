"""Model cards and Hub glue: our card is rendered from `model_cards/`, pushed with the weights, and patched in place.

`push_to_hub` of a relative model writes *our* card (metadata, model-index, provenance of stitched models) instead of
transformers' stub. When the repository already has a card, only the section between the hf-relrep markers and our
metadata keys are replaced; anything else the owner wrote is kept.
"""

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from .errors import CorruptDownloadError


CARD_BEGIN = "<!-- hf-relrep card: begin -->"
CARD_END = "<!-- hf-relrep card: end -->"
LIBRARY_TAGS = ["hf-relrep", "relative-representations", "model-stitching"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def model_cards_dir() -> Path:
    """The card templates: shipped inside the wheel as ``hf_relrep/model_cards``, or ``model_cards/`` in a checkout."""
    for candidate in (Path(__file__).parent / "model_cards", Path(__file__).parent.parent / "model_cards"):
        if (candidate / "relative_model.md").exists():
            return candidate
    raise FileNotFoundError("hf-relrep's model card templates are missing; reinstall the package.")


def _hub_id_or_none(name: str | None) -> str | None:
    """Card metadata only accepts Hub ids; a local path says nothing to a reader of the Hub page."""
    if not name or os.path.exists(name) or not _HUB_ID.match(name):
        return None
    return name


def _labels(config) -> str:
    return ", ".join(f"`{config.id2label[i]}`" for i in sorted(config.id2label))


def build_model_card(
    model,
    *,
    repo_id: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    datasets: str | list[str] | None = None,
    eval_results: list[EvalResult] | None = None,
    tags: list[str] | None = None,
    training_summary: str | None = None,
    has_tokenizer: bool = False,
    existing: ModelCard | None = None,
) -> ModelCard:
    """Render the card of a relative (or stitched) model from the templates in `model_cards/`.

    Args:
        model: a `RelativeModelForSequenceClassification`.
        repo_id: where it lives, for the loading snippet.
        language, license, datasets, tags: card metadata.
        eval_results: `huggingface_hub.EvalResult`s; they become the `model-index`.
        training_summary: free text for the card's Training section.
        has_tokenizer: whether the tokenizer is pushed with the model.
        existing: the card already in the repository; our section and metadata keys are replaced, the rest kept.
    """
    config = model.config
    provenance = config.provenance or {}
    stitched = bool(provenance.get("encoder")) and bool(provenance.get("head"))
    model_name = repo_id.split("/")[-1] if repo_id else "relative-model"
    if stitched:
        base_models = [provenance["encoder"].get("base_model"), provenance["head"].get("base_model")]
    else:
        base_models = [config.base_model]
    base_models = list(dict.fromkeys(b for b in map(_hub_id_or_none, base_models) if b))
    if isinstance(language, str):
        language = [language]
    card_data = ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        tags=list(dict.fromkeys(LIBRARY_TAGS + (["stitched"] if stitched else []) + list(tags or []))),
        base_model=(base_models[0] if len(base_models) == 1 else base_models) or None,
        datasets=[datasets] if isinstance(datasets, str) else datasets,
        pipeline_tag="text-classification",
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    from . import __version__

    backbone = config.backbone
    backbone_desc = f"`{backbone.model_type}`, hidden size {backbone.hidden_size}"
    if _hub_id_or_none(config.base_model):
        backbone_desc = f"[{config.base_model}](https://huggingface.co/{config.base_model}) ({backbone_desc})"
    template = model_cards_dir() / ("stitched_model.md" if stitched else "relative_model.md")
    card = ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_name=model_name,
        repo_id=repo_id or "path/to/model",
        has_tokenizer=has_tokenizer,
        backbone_desc=backbone_desc,
        pooling=config.pooling,
        adapter=config.adapter,
        representation=config.representation,
        normalization=config.normalization,
        stats=config.stats,
        num_anchors=config.num_anchors,
        anchor_set_id=config.anchor_set_id,
        anchor_fingerprint=(config.anchor_fingerprint or "")[:19],
        head=config.head,
        labels=_labels(config),
        results=eval_results or [],
        training_summary=training_summary,
        hf_relrep_version=__version__,
        encoder=provenance.get("encoder", {}),
        head_part=provenance.get("head", {}),
        language=language,
    )
    return merge_model_cards(existing, card) if existing is not None else card


def merge_model_cards(existing: ModelCard, ours: ModelCard) -> ModelCard:
    """Patch `existing` with `ours`: our metadata keys and our marked section replace theirs; the rest stays.

    A card with no hf-relrep section gets ours appended, except transformers' auto-generated stub, which is replaced.
    """
    metadata = existing.data.to_dict()
    metadata.update({key: value for key, value in ours.data.to_dict().items() if value is not None})
    if ours.data.tags and existing.data.tags:
        metadata["tags"] = list(dict.fromkeys(list(existing.data.tags) + list(ours.data.tags)))
    ours_section = ours.text[ours.text.index(CARD_BEGIN) : ours.text.index(CARD_END) + len(CARD_END)]
    text = existing.text
    if CARD_BEGIN in text and CARD_END in text:
        text = text[: text.index(CARD_BEGIN)] + ours_section + text[text.index(CARD_END) + len(CARD_END) :]
    elif "automatically generated" in text or not text.strip():
        text = "\n" + ours_section + "\n"
    else:
        text = text.rstrip() + "\n\n" + ours_section + "\n"
    return ModelCard(f"---\n{ModelCardData(**metadata).to_yaml()}\n---\n{text}")


def load_existing_card(repo_id: str, token: str | bool | None = None, revision: str | None = None) -> ModelCard | None:
    """The repository's current card, or `None` when it has none (or the repository does not exist yet)."""
    try:
        path = hf_hub_download(repo_id, "README.md", revision=revision, token=token)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return None
    return ModelCard.load(path)


def _git_blob_sha1(path: str) -> str:
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cached_files(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    suffixes: tuple[str, ...] = (".safetensors", ".json"),
) -> list[str]:
    """Check the cached files of a Hub model against the checksums the Hub lists for them.

    huggingface_hub checks a download's size, not its content: a file with the right length and wrong bytes is
    accepted. This compares every cached file ending in one of `suffixes` with the Hub's LFS sha256 or git blob sha1.
    A file that does not match is removed from the cache (so the next load downloads it again) and reported.

    Returns:
        The files checked.

    Raises:
        CorruptDownloadError: a cached file does not match; it has been removed from the cache.
    """
    info = HfApi().model_info(repo_id, revision=revision, token=token, files_metadata=True)
    checked = []
    for sibling in info.siblings or []:
        if not sibling.rfilename.endswith(suffixes):
            continue
        path = try_to_load_from_cache(repo_id, sibling.rfilename, cache_dir=cache_dir, revision=info.sha)
        if not isinstance(path, str):
            continue  # not downloaded: nothing to check
        if sibling.lfs is not None:
            expected, actual = sibling.lfs.sha256, _sha256(path)
        elif sibling.blob_id:
            expected, actual = sibling.blob_id, _git_blob_sha1(path)
        else:
            continue
        if expected != actual:
            real = os.path.realpath(path)
            for stale in {path, real}:
                if os.path.lexists(stale):
                    os.remove(stale)
            raise CorruptDownloadError(
                f"{sibling.rfilename} of {repo_id}@{info.sha[:12]} does not match the Hub's checksum (a corrupted "
                "download); it was removed from the cache. Load the model again to download it anew."
            )
        checked.append(sibling.rfilename)
    return checked


class RelativeHubMixin:
    """`push_to_hub` that writes hf-relrep's model card (and the tokenizer, when given) with the weights."""

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
        tokenizer=None,
        card_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Upload the model (safetensors, config with anchors), its card, and optionally its tokenizer, in one commit.

        Args:
            repo_id: ``namespace/name``; created when missing.
            tokenizer: pushed with the model so that the repository is complete (stitched models need the
                encoder's tokenizer).
            card_kwargs: passed to [`build_model_card`] (``language``, ``license``, ``datasets``, ``eval_results``,
                ``training_summary``).
            Other arguments: as `transformers.PreTrainedModel.push_to_hub`.

        Returns:
            The commit info of the upload.
        """
        api = HfApi(token=token if isinstance(token, str) else None)
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        existing = load_existing_card(repo_id, token=token, revision=revision)
        card = build_model_card(
            self,
            repo_id=repo_id,
            tags=tags,
            has_tokenizer=tokenizer is not None,
            existing=existing,
            **(card_kwargs or {}),
        )
        with tempfile.TemporaryDirectory() as tmp_dir:
            self.save_pretrained(tmp_dir, max_shard_size=max_shard_size)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp_dir)
            card.save(os.path.join(tmp_dir, "README.md"))
            return self._upload_modified_files(
                tmp_dir,
                repo_id,
                files_timestamps={},
                commit_message=commit_message or ("Upload stitched model" if self.config.provenance else None),
                token=token,
                create_pr=create_pr,
                revision=revision,
                commit_description=commit_description,
            )


__all__ = [
    "RelativeHubMixin",
    "build_model_card",
    "load_existing_card",
    "merge_model_cards",
    "model_cards_dir",
    "verify_cached_files",
]
