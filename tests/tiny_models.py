"""Tiny local backbones and tokenizers for tests: nothing is downloaded."""

import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast


WORDS = [
    "the",
    "a",
    "an",
    "is",
    "was",
    "and",
    "but",
    "not",
    "very",
    "good",
    "bad",
    "great",
    "terrible",
    "fine",
    "movie",
    "film",
    "plot",
    "actor",
    "acting",
    "boring",
    "fun",
    "love",
    "hate",
    "best",
    "worst",
    "awful",
    "nice",
    "story",
    "ending",
    "le",
    "la",
    "un",
    "une",
    "est",
    "et",
    "mais",
    "pas",
    "très",
    "bon",
    "mauvais",
    "film",
    "histoire",
]


def tiny_bert_config(**overrides) -> BertConfig:
    values = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=128,
        max_position_embeddings=64,
    )
    values.update(overrides)
    return BertConfig(**values)


def tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase] + list(".,!?'")
    vocab = specials + letters + [w for w in WORDS if w not in letters]
    return list(dict.fromkeys(vocab))


def save_tiny_backbone(path: str | Path, *, seed: int = 0, **config_overrides) -> Path:
    """Write a tiny random BERT and its WordPiece tokenizer into `path`, like a Hub checkpoint folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    model = BertModel(tiny_bert_config(vocab_size=len(vocab), **config_overrides), add_pooling_layer=False)
    model.save_pretrained(path)
    return path


# A parallel English/French anchor set and a label set shared by the stitching, Hub, CLI and example tests.
ANCHORS_EN = ["a good film", "a bad film", "the plot was boring", "great acting", "terrible ending", "i love it"]
ANCHORS_FR = ["un bon film", "un mauvais film", "histoire pas bon", "très bon", "mauvais et pas fun", "la histoire"]
ANCHOR_SET_ID = "en-fr-test@1"
LABELS = {0: "negative", 1: "positive"}


def save_language_backbones(root: str | Path) -> tuple[Path, Path]:
    """An "English" and a "French" tiny backbone of different sizes and seeds (two architectures to stitch)."""
    root = Path(root)
    english = save_tiny_backbone(root / "backbone-en", seed=1)
    french = save_tiny_backbone(root / "backbone-fr", seed=2, hidden_size=48, num_hidden_layers=1)
    return english, french


def relative_classifier(backbone: str | Path, anchors: list[str], seed: int, **kwargs):
    """A relative classifier on `backbone` with mean pooling, the shared labels and anchor set id, in eval mode."""
    from hf_relrep import RelativeModelForSequenceClassification

    torch.manual_seed(seed)
    kwargs.setdefault("anchor_set_id", ANCHOR_SET_ID)
    kwargs.setdefault("id2label", LABELS)
    return RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(backbone), anchor_texts=anchors, pooling="mean", **kwargs
    ).eval()
