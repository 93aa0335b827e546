"""stitch_translated(...): absolute models (ours, BERT-like, RoBERTa-like) stitched through a fitted latent translation;
save → Auto load, the local Hub, the card, the space report, compare_spaces, refusals."""

import itertools
import random
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from tiny_models import ANCHORS_EN, ANCHORS_FR, LABELS, WORDS, relative_classifier, tiny_bert_config
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from hf_relrep import (
    TranslatedModelForSequenceClassification,
    compare_spaces,
    fit_translation,
    stitch,
)
from hf_relrep.errors import AnchorError, StitchingError
from hf_relrep.stitching import stitch_translated
from hf_relrep.stitching.sources import state_fingerprint


def _sentences(count: int, seed: int = 0) -> list[str]:
    """`count` distinct short sentences from the tiny vocabulary."""
    generator = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen[" ".join(generator.choice(WORDS[:29]) for _ in range(generator.randint(2, 6)))] = None
    return list(seen)


ANCHORS = _sentences(96)


def _absolute(backbone, seed: int):
    return relative_classifier(backbone, None, seed, representation="absolute")


def _batch(backbone, texts=("a good film", "the plot was boring and bad")):
    return AutoTokenizer.from_pretrained(backbone)(list(texts), padding=True, return_tensors="pt")


def _save_hf_classifier(path: Path, backbone: Path, kind: str, seed: int) -> Path:
    """A tiny BERT-like or RoBERTa-like sequence classifier with the tiny tokenizer, saved like a Hub checkpoint."""
    torch.manual_seed(seed)
    values = tiny_bert_config().to_dict()
    shared = {k: values[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if kind == "bert":
        config = tiny_bert_config(vocab_size=len(tokenizer), id2label=LABELS)
        model = BertForSequenceClassification(config)
    else:
        config = RobertaConfig(
            **shared, vocab_size=len(tokenizer), max_position_embeddings=66, pad_token_id=0, type_vocab_size=2,
            id2label=LABELS,
        )  # fmt: skip
        model = RobertaForSequenceClassification(config)
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_classifiers(language_backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-classifiers")
    return {
        kind: _save_hf_classifier(root / kind, language_backbones[0], kind, seed)
        for kind, seed in (("bert", 5), ("roberta", 6))
    }


def test_absolute_models_of_different_sizes_stitch_through_a_translation(language_backbones, tmp_path):
    english, french = _absolute(language_backbones[0], 1), _absolute(language_backbones[1], 2)
    stitched = stitch_translated(
        encoder_from=french, head_from=english, translation="orthogonal", anchors=(ANCHORS[::-1], ANCHORS),
        anchor_set_id="test@1",
    )  # fmt: skip
    assert isinstance(stitched, TranslatedModelForSequenceClassification)
    assert (stitched.translation.source_dim, stitched.translation.target_dim) == (48, 32)

    # By hand: French latents of its anchors, English latents of its anchors, the fitted map, the English head (96
    # anchors > 48 dimensions: the map is unique).
    fr_tokenizer, en_tokenizer = (
        AutoTokenizer.from_pretrained(b) for b in (language_backbones[1], language_backbones[0])
    )
    with torch.no_grad():
        fr_anchors = french(**fr_tokenizer(ANCHORS[::-1], padding=True, return_tensors="pt")).latents
        en_anchors = english(**en_tokenizer(ANCHORS, padding=True, return_tensors="pt")).latents
    translation = fit_translation(fr_anchors, en_anchors, method="orthogonal")
    batch = _batch(language_backbones[1], ["un film très bon", "mauvais"])
    expected = english.head(translation(french(**batch).latents))
    torch.testing.assert_close(stitched(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    assert state_fingerprint(stitched.head) == state_fingerprint(english.head)
    provenance = stitched.config.provenance
    assert provenance["translation"]["method"] == "orthogonal" and provenance["translation"]["num_anchors"] == 96
    assert stitched.config.anchor_set_id == "test@1"

    stitched.save_pretrained(tmp_path / "stitched")
    assert not list((tmp_path / "stitched").glob("*.bin"))
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "stitched")
    assert isinstance(loaded, TranslatedModelForSequenceClassification)
    torch.testing.assert_close(loaded(**batch).logits, stitched(**batch).logits)
    assert loaded.config.provenance == provenance and loaded.config.id2label == english.config.id2label
    # The encoder's tokenizer travels with the model.
    assert (
        AutoTokenizer.from_pretrained(tmp_path / "stitched")("mauvais")["input_ids"]
        == fr_tokenizer("mauvais")["input_ids"]
    )


@pytest.mark.parametrize("method", ["orthogonal", "linear", "affine"])
def test_a_model_stitched_with_itself_gives_back_its_own_logits(language_backbones, method):
    english = _absolute(language_backbones[0], 3)
    stitched = stitch_translated(encoder_from=english, head_from=english, translation=method, anchors=ANCHORS)
    batch = _batch(language_backbones[0])
    torch.testing.assert_close(stitched(**batch).logits, english(**batch).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("encoder", "head"), list(itertools.product(["bert", "roberta", "ours"], repeat=2)))
def test_bert_like_roberta_like_and_our_absolute_halves_stitch_both_ways(
    encoder, head, hf_classifiers, language_backbones, tmp_path
):
    ours = _absolute(language_backbones[0], 4)
    source = {"bert": hf_classifiers["bert"], "roberta": hf_classifiers["roberta"], "ours": ours}
    stitched = stitch_translated(
        encoder_from=source[encoder], head_from=source[head], translation="linear", anchors=ANCHORS
    )
    batch = _batch(language_backbones[0])
    models = {k: v if not isinstance(v, Path) else AutoModelForSequenceClassification.from_pretrained(v).eval()
              for k, v in source.items()}  # fmt: skip
    if encoder == head:  # a linear map fitted between identical spaces is the identity
        torch.testing.assert_close(stitched(**batch).logits, models[head](**batch).logits, atol=1e-4, rtol=1e-4)
    stitched.save_pretrained(tmp_path / "stitched")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "stitched")
    torch.testing.assert_close(loaded(**batch).logits, stitched(**batch).logits)
    assert loaded.config.encoder_kind == {"bert": "pooled", "roberta": "first-token", "ours": "hf-relrep"}[encoder]


def test_cached_anchor_latents_and_shared_weights(language_backbones):
    english, french = _absolute(language_backbones[0], 1), _absolute(language_backbones[1], 2)
    source, target = torch.randn(20, 48), torch.randn(20, 32)
    stitched = stitch_translated(
        encoder_from=french, head_from=english, translation="affine", anchor_latents=(source, target),
        share_weights=True,
    )  # fmt: skip
    assert stitched.head.layers.weight.data_ptr() == english.head.layers.weight.data_ptr()
    features = torch.randn(3, 48)
    expected = english.head(fit_translation(source, target, method="affine")(french.encoder.adapter(features)))
    torch.testing.assert_close(stitched(backbone_features=features).logits, expected)
    assert stitched.config.anchor_fingerprint.startswith("sha256:")


def test_push_and_pull_through_the_hub_with_our_card(local_hub, language_backbones):
    english, french = _absolute(language_backbones[0], 1), _absolute(language_backbones[1], 2)
    english.push_to_hub("test-user/abs-en")
    french.push_to_hub("test-user/abs-fr")
    stitched = stitch_translated(
        encoder_from="test-user/abs-fr", head_from="test-user/abs-en", translation="orthogonal",
        anchors=(ANCHORS_FR, ANCHORS_EN), anchor_set_id="en-fr-test@1", report=True,
        encoder_tokenizer=AutoTokenizer.from_pretrained(language_backbones[1]),
        head_tokenizer=AutoTokenizer.from_pretrained(language_backbones[0]),
    )  # fmt: skip
    assert stitched.config.provenance["encoder"]["source"] == "test-user/abs-fr"
    assert "commit" in stitched.config.provenance["head"]
    stitched.push_to_hub("test-user/fr-en-translated")
    pulled = AutoModelForSequenceClassification.from_pretrained("test-user/fr-en-translated")
    batch = _batch(language_backbones[1], ["un bon film"])
    torch.testing.assert_close(pulled(**batch).logits, stitched(**batch).logits)

    card = ModelCard.load("test-user/fr-en-translated")
    assert "latent-translation" in card.data.tags and "stitched" in card.data.tags
    assert "`orthogonal`" in card.text and "en-fr-test@1" in card.text and "linear CKA" in card.text
    assert "test-user/abs-fr" in card.text and stitched.config.provenance["head"]["content_sha256"] in card.text


def test_report_on_a_relative_stitch_goes_into_provenance_and_the_card(language_models):
    english, french = language_models
    stitched = stitch(encoder_from=french, head_from=english, report=True)
    report = stitched.config.provenance["report"]
    assert report["num_rows"] == report["num_anchors"] == 6
    assert set(report["relative"]) == {"none", "robust", "whiten"}
    assert 0.0 <= report["cka_linear"] <= 1.0
    from hf_relrep.hub import build_model_card

    assert "kNN Jaccard" in build_model_card(stitched, repo_id="me/stitched").text


def test_compare_spaces_on_own_anchors_and_on_given_texts(language_models, hf_classifiers, language_backbones):
    english, french = language_models
    own = compare_spaces(english, french)
    assert own["num_anchors"] == 6
    on_texts = compare_spaces(hf_classifiers["bert"], english, ANCHORS, k=5)
    assert on_texts["num_rows"] == len(ANCHORS) and on_texts["knn_k"] == 5
    same = compare_spaces(english, english, ANCHORS)
    assert same["cka_linear"] == pytest.approx(1.0) and same["knn_jaccard"] == pytest.approx(1.0)


def test_refusals(language_backbones, language_models, tmp_path):
    english, french = language_models
    absolute = _absolute(language_backbones[0], 1)
    with pytest.raises(StitchingError, match="relative models stitch without translation"):
        stitch_translated(encoder_from=french, head_from=absolute, translation="orthogonal", anchors=ANCHORS)
    with pytest.raises(AnchorError, match="parallel anchors"):
        stitch_translated(encoder_from=absolute, head_from=absolute, translation="orthogonal")
    with pytest.raises(AnchorError, match="counterpart"):
        stitch_translated(encoder_from=absolute, head_from=absolute, anchors=(ANCHORS, ANCHORS[:5]))
    with pytest.raises(StitchingError, match="stitch_translated"):
        stitch(encoder_from=french, head_from=english, anchors=ANCHORS)
    other_labels = relative_classifier(
        language_backbones[0], None, 2, representation="absolute", id2label={0: "a", 1: "b"}
    )
    with pytest.raises(StitchingError, match="label sets differ"):
        stitch_translated(encoder_from=absolute, head_from=other_labels, translation="linear", anchors=ANCHORS)
    distil = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=128, dim=32, n_layers=1, n_heads=2, hidden_dim=37, id2label=LABELS)
    )
    with pytest.raises(StitchingError, match="cannot split"):
        stitch_translated(encoder_from=distil, head_from=absolute, translation="linear", anchors=ANCHORS)
