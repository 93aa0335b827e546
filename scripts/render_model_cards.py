"""Render ``model_cards/``: the cards hf-relrep writes for a relative model, a stitched pair and a translated stitch.

The models are those `hf-relrep reproduce` builds on its embedded default (the ``quick`` preset): the packaged offline
encoders (all-MiniLM-L6-v2 for English, multilingual-e5-small for French, `hf_relrep.zoo`), the 768 parallel anchors
of the shipped sentiment set (`hf_relrep.data.load_parallel_sentiment`), and the preset's pooling, adapter, head and
statistics. They are built, not trained: a card renders from a model's config and provenance, which training does not
change, and the cards carry no scores (a card has an Evaluation section only when it is given evaluation results).
One departure: the translated stitch is fitted on the first `TRANSLATION_ANCHORS` of the 768 parallel anchors
(`reproduce` fits on all of them), because fitting embeds its anchors with both encoders, and 2 × 768 sentences take
minutes on two CPU cores where 2 × 64 take seconds; the relative models carry all 768 (they only tokenize them).

The cards are what `push_to_hub` would upload (`hf_relrep.hub.build_model_card`), with the repository ids of the
README's examples (``me/relrep-en``, ...) standing for wherever a user pushes. Nothing in them depends on the machine:
the backbones are named by their Hub ids, not by where the wheels are installed.

Usage, from the repository root::

    python scripts/render_model_cards.py          # rewrite model_cards/
    python scripts/render_model_cards.py --check  # exit 1, naming the stale files, if model_cards/ is not current

``tests/hub/test_model_cards_folder.py`` renders the same cards and compares them with the checked-in files.
"""

import argparse
import sys
import warnings
from pathlib import Path

import torch
from transformers import AutoTokenizer

from hf_relrep import AbsoluteStitchingWarning, RelativeModelForSequenceClassification, stitch, stitch_translated
from hf_relrep.data import SENTIMENT_LABELS, load_parallel_sentiment
from hf_relrep.experiments.reproduce.config import METHODS, PRESETS, Method, ReproduceConfig
from hf_relrep.hub import build_model_card
from hf_relrep.utils.files import atomic_write_text
from hf_relrep.zoo import find_offline_encoder, offline_encoder


ROOT = Path(__file__).resolve().parent.parent
CARDS_DIR = ROOT / "model_cards"
TRANSLATION_ANCHORS = 64
# The repository each card stands for: the README's examples.
REPO_IDS = {
    "relative": {"en": "me/relrep-en", "fr": "me/relrep-fr"},
    "absolute": {"en": "me/absolute-en", "fr": "me/absolute-fr"},
    "stitched": "me/fr-encoder-en-head",
    "translated": "me/absolute-fr-encoder-en-head",
}


def build_classifier(
    config: ReproduceConfig, method: Method, language: str, anchors: dict[str, list[str]], latent_size: int
) -> RelativeModelForSequenceClassification:
    """`method`'s classifier on `language`'s offline encoder, as `hf-relrep reproduce` builds it, untrained.

    Its sources are named by Hub ids: the backbone's (`base_model`) and the repository it stands for (`name_or_path`),
    which stitching records as provenance.
    """
    spec = find_offline_encoder(config.encoders[language])
    relative = method.representation == "relative"
    torch.manual_seed(0)
    model = RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(offline_encoder(spec.name)),
        anchor_texts=anchors[language] if relative else None,
        anchor_set_id=f"{config.dataset}/anchors/{len(anchors[language])}" if relative else None,
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        representation=method.representation,
        normalization=method.normalization,
        stats=config.stats,
        pooling=config.pooling_for(language),
        adapter=config.adapter,
        adapter_size=latent_size if config.adapter != "none" else None,
        head=config.head,
        whiten_shrinkage=method.whiten_shrinkage,
        anchor_text_prefix=config.prefix_for(language),
        anchor_max_length=config.max_length,
        anchor_refresh_steps=config.anchor_refresh_steps,
    ).eval()
    model.config.base_model = spec.hub_id
    model.config.name_or_path = REPO_IDS[method.representation][language]
    return model


def render_cards() -> dict[str, str]:
    """The cards, by path relative to ``model_cards/``: ``relative-model/README.md``, ``stitched-model/README.md`` and
    ``translated-model/README.md``."""
    config = PRESETS["quick"]
    anchors_split = load_parallel_sentiment()["anchors"]
    anchors = {language: list(anchors_split[f"text_{language}"]) for language in ("en", "fr")}
    specs = {language: find_offline_encoder(config.encoders[language]) for language in ("en", "fr")}
    licenses = {language: spec.license for language, spec in specs.items()}
    tokenizers = {
        language: AutoTokenizer.from_pretrained(offline_encoder(spec.name)) for language, spec in specs.items()
    }
    relative, absolute = METHODS["robust"], METHODS["absolute+orthogonal"]

    latent_size = 384  # both offline encoders' hidden size; `reproduce` sets the adapter to the larger of the two
    models = {
        (kind, language): build_classifier(config, method, language, anchors, latent_size)
        for kind, method in (("relative", relative), ("absolute", absolute))
        for language in ("en", "fr")
    }
    stitched = stitch(encoder_from=models["relative", "fr"], head_from=models["relative", "en"], share_weights=True)
    with torch.no_grad():
        translated = stitch_translated(
            encoder_from=models["absolute", "fr"],
            head_from=models["absolute", "en"],
            translation=absolute.translation,
            anchors=(anchors["fr"][:TRANSLATION_ANCHORS], anchors["en"][:TRANSLATION_ANCHORS]),
            encoder_tokenizer=tokenizers["fr"],
            head_tokenizer=tokenizers["en"],
            anchor_set_id=f"{config.dataset}/anchors/{len(anchors['en'])}[:{TRANSLATION_ANCHORS}]",
            share_weights=True,
        )
    cards = {
        "relative-model/README.md": build_model_card(
            models["relative", "en"], repo_id=REPO_IDS["relative"]["en"], language="en", license=licenses["en"],
            has_tokenizer=True,
        ),
        "stitched-model/README.md": build_model_card(
            stitched, repo_id=REPO_IDS["stitched"], language="fr", has_tokenizer=True
        ),
        "translated-model/README.md": build_model_card(
            translated, repo_id=REPO_IDS["translated"], language="fr", has_tokenizer=True
        ),
    }  # fmt: skip
    return {path: str(card) + ("" if str(card).endswith("\n") else "\n") for path, card in cards.items()}


def stale_files(cards: dict[str, str], folder: Path = CARDS_DIR) -> list[str]:
    """The paths among `cards` whose file in `folder` is missing or differs."""
    return [
        path for path, text in cards.items() if not (folder / path).is_file() or (folder / path).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with model_cards/ instead of writing it")
    parser.add_argument("--out", type=Path, default=CARDS_DIR, help="the folder to write (default: model_cards/)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AbsoluteStitchingWarning)
        cards = render_cards()
    if args.check:
        stale = stale_files(cards, args.out)
        for path in stale:
            print(f"stale: {args.out / path} (run python scripts/render_model_cards.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in cards.items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
