"""Tiny local backbones and tokenizers for tests: nothing is downloaded.

- `save_tiny_backbone`: a tiny BERT and its WordPiece tokenizer, the suite's default backbone.
- `TEXT_FAMILIES`: one tiny text backbone per family a user brings (BERT, RoBERTa, DistilBERT, GPT-2, Llama, T5, BART),
  each with a word-level tokenizer shaped like its real one (specials, padding side, GPT-2's missing pad token).
- `save_language_backbones` / `relative_classifier`: the English/French pair the stitching, Hub and CLI tests share.
"""

import dataclasses
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers import models as tokenizer_models
from transformers import (
    AutoModel,
    BartConfig,
    BertConfig,
    BertModel,
    BertTokenizerFast,
    DistilBertConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedConfig,
    PreTrainedTokenizerFast,
    RobertaConfig,
    T5Config,
)


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


# ---------------------------------------------------------------- one tiny text backbone per family
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]"]
FAMILY_WORDS = (
    "a the film movie plot was is good bad great boring fun not very i love hate it story ending nice".split()
)


def word_tokenizer(template: str | None, *, pad: bool = True, **kwargs: Any) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over `FAMILY_WORDS`; `template` adds special tokens (e.g. ``"<s> $A </s>"``)."""
    vocab = {token: index for index, token in enumerate(SPECIALS + FAMILY_WORDS)}
    backend = Tokenizer(tokenizer_models.WordLevel(vocab, unk_token="<unk>"))
    # Lower case, punctuation dropped: an anchor of punctuation alone tokenizes to nothing.
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[!?.,;:]"), "")])
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if template is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(token, vocab[token]) for token in SPECIALS if token in template]
        )
    specials = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", **kwargs}
    if pad:
        specials["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=64, **specials)


TEXT_SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
TOKENS = dict(vocab_size=len(SPECIALS) + len(FAMILY_WORDS), pad_token_id=0, bos_token_id=1, eos_token_id=2)
BART_SIZES = dict(encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2)


@dataclasses.dataclass(frozen=True)
class TextFamily:
    """A tiny random text backbone of one family and the tokenizer it ships with, saved like a Hub checkpoint.

    Attributes:
        name: the family (``"bert"``, ``"gpt2"``, ...), also the test id.
        config: builds the backbone's config; ``None`` for BERT, which `save_tiny_backbone` writes.
        template: the tokenizer's special-token template (``None``: no specials, as GPT-2).
        padding_side: the side its tokenizer pads (Llama pads on the left).
        pad_token: whether its tokenizer has a pad token (GPT-2's has none).
    """

    name: str
    config: Callable[[], PreTrainedConfig] | None
    template: str | None = None
    padding_side: str = "right"
    pad_token: bool = True

    def __str__(self) -> str:
        return self.name

    def save(self, path: str | Path, *, seed: int = 0) -> Path:
        """Write the backbone (seeded) and its tokenizer into `path`."""
        path = Path(path)
        if self.config is None:
            return save_tiny_backbone(path, seed=seed)
        torch.manual_seed(seed)
        AutoModel.from_config(self.config()).save_pretrained(path)
        tokenizer = word_tokenizer(self.template, pad=self.pad_token, padding_side=self.padding_side)
        tokenizer.save_pretrained(path)
        return path


TEXT_FAMILIES = [
    TextFamily("bert", None),
    TextFamily("roberta", lambda: RobertaConfig(**TEXT_SIZES, **TOKENS, max_position_embeddings=70), "<s> $A </s>"),
    TextFamily(
        "distilbert",
        lambda: DistilBertConfig(
            dim=32, n_layers=2, n_heads=2, hidden_dim=37, vocab_size=TOKENS["vocab_size"], pad_token_id=0
        ),
        "[CLS] $A [SEP]",
    ),
    TextFamily(  # no pad token, as GPT-2's tokenizer ships
        "gpt2",
        lambda: GPT2Config(
            n_embd=32, n_layer=2, n_head=2, vocab_size=TOKENS["vocab_size"], bos_token_id=1, eos_token_id=2
        ),
        None,
        pad_token=False,
    ),
    TextFamily(
        "llama", lambda: LlamaConfig(**TEXT_SIZES, num_key_value_heads=2, **TOKENS), "<s> $A", padding_side="left"
    ),
    TextFamily(
        "t5",
        lambda: T5Config(d_model=32, d_ff=37, d_kv=16, num_layers=2, num_heads=2, decoder_start_token_id=0, **TOKENS),
        "$A </s>",
    ),
    TextFamily(
        "bart",
        lambda: BartConfig(
            d_model=32, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64, **BART_SIZES, **TOKENS
        ),
        "<s> $A </s>",
    ),
]
TEXT_FAMILY = {family.name: family for family in TEXT_FAMILIES}


def save_text_families(root: str | Path) -> dict[str, Path]:
    """Every family of `TEXT_FAMILIES` saved under `root`, by name."""
    root = Path(root)
    return {family.name: family.save(root / family.name) for family in TEXT_FAMILIES}
