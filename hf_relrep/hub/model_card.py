"""Model cards: rendered from the templates in ``hf_relrep/hub/templates/``, patched in place, never clobbered.

`push_to_hub` of a relative model writes *our* card (metadata, model-index, provenance of stitched models) instead of
transformers' stub. When the repository already has a card, only the section between the hf-relrep markers and our
metadata keys are replaced; anything else the owner wrote is kept.
"""

import os
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from ..version import __version__


TEMPLATES_DIR = Path(__file__).parent / "templates"

CARD_BEGIN = "<!-- hf-relrep card: begin -->"
CARD_END = "<!-- hf-relrep card: end -->"
LIBRARY_TAGS = ["hf-relrep", "relative-representations", "model-stitching"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _hub_id_or_none(name: str | None) -> str | None:
    """Card metadata only accepts Hub ids; a local path says nothing to a reader of the Hub page."""
    if not name or os.path.exists(name) or not _HUB_ID.match(name):
        return None
    return name


def _labels(config) -> str:
    return ", ".join(f"`{config.id2label[i]}`" for i in sorted(config.id2label))


def _card_data(
    base_models: list[str | None], kind_tags: list[str], *, model_name: str, language: list[str] | None,
    license: str | None, datasets: str | list[str] | None, eval_results: list[EvalResult] | None,
    tags: list[str] | None,
) -> ModelCardData:  # fmt: skip
    """The card metadata of every hf-relrep card: the library's tags, then `kind_tags`, then the user's; the Hub ids
    among `base_models` (once each); the `model-index` only with evaluation results."""
    hub_ids = list(dict.fromkeys(b for b in map(_hub_id_or_none, base_models) if b))
    return ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        tags=list(dict.fromkeys([*LIBRARY_TAGS, *kind_tags, *(tags or [])])),
        base_model=(hub_ids[0] if len(hub_ids) == 1 else hub_ids) or None,
        datasets=[datasets] if isinstance(datasets, str) else datasets,
        pipeline_tag="text-classification",
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )


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
    """Render the card of a relative (or stitched) model from the templates in ``hf_relrep/hub/templates/``.

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
    if getattr(config, "translation", None) is not None:
        return build_translated_model_card(
            model, repo_id=repo_id, language=language, license=license, datasets=datasets,
            eval_results=eval_results, tags=tags, has_tokenizer=has_tokenizer, existing=existing,
        )  # fmt: skip
    stitched = bool(provenance.get("encoder")) and bool(provenance.get("head"))
    model_name = repo_id.split("/")[-1] if repo_id else "relative-model"
    if stitched:
        base_models = [provenance["encoder"].get("base_model"), provenance["head"].get("base_model")]
    else:
        base_models = [config.base_model]
    if isinstance(language, str):
        language = [language]
    card_data = _card_data(
        base_models, ["stitched"] if stitched else [], model_name=model_name, language=language, license=license,
        datasets=datasets, eval_results=eval_results, tags=tags,
    )  # fmt: skip
    backbone = config.backbone
    backbone_desc = f"`{backbone.model_type}`, hidden size {backbone.hidden_size}"
    if _hub_id_or_none(config.base_model):
        backbone_desc = f"[{config.base_model}](https://huggingface.co/{config.base_model}) ({backbone_desc})"
    template = TEMPLATES_DIR / ("stitched_model.md" if stitched else "relative_model.md")
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
        report=provenance.get("report"),
        language=language,
    )
    return merge_model_cards(existing, card) if existing is not None else card


def build_translated_model_card(
    model,
    *,
    repo_id: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    datasets: str | list[str] | None = None,
    eval_results: list[EvalResult] | None = None,
    tags: list[str] | None = None,
    has_tokenizer: bool = False,
    existing: ModelCard | None = None,
) -> ModelCard:
    """The card of a `TranslatedModelForSequenceClassification`: both sources, the translation method, the anchor set
    it was fitted on and, when `stitch(..., report=True)` made it, the comparison of the two spaces."""
    config = model.config
    provenance = config.provenance or {}
    encoder, head = provenance.get("encoder", {}), provenance.get("head", {})
    model_name = repo_id.split("/")[-1] if repo_id else "translated-model"
    if isinstance(language, str):
        language = [language]
    card_data = _card_data(
        [part.get("base_model") for part in (encoder, head)], ["stitched", "latent-translation"],
        model_name=model_name, language=language, license=license, datasets=datasets, eval_results=eval_results,
        tags=tags,
    )  # fmt: skip
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES_DIR / "translated_model.md"),
        model_name=model_name,
        repo_id=repo_id or "path/to/model",
        has_tokenizer=has_tokenizer,
        encoder=encoder,
        head_part=head,
        translation=config.translation,
        source_dim=config.source_dim,
        target_dim=config.target_dim,
        num_anchors=config.num_anchors,
        anchor_set_id=config.anchor_set_id,
        anchor_fingerprint=(config.anchor_fingerprint or "")[:19],
        labels=_labels(config),
        report=provenance.get("report"),
        results=eval_results or [],
        hf_relrep_version=__version__,
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
