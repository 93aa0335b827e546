"""stitch(): the encoder side of one relative model with the head of another; refusals when they do not correspond."""

import pytest
import torch
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertModel

from hf_relrep.errors import StitchingError
from hf_relrep.stitching.relative import AbsoluteStitchingWarning, stitch
from hf_relrep.stitching.sources import state_fingerprint


def test_stitched_model_is_encoder_of_one_and_head_of_the_other(language_backbones, language_models, tmp_path):
    english, french = language_models
    stitched = stitch(encoder_from=french, head_from=english)
    tokenizer = AutoTokenizer.from_pretrained(language_backbones[1])
    batch = tokenizer(["un film très bon", "mauvais"], padding=True, return_tensors="pt")

    expected = english.head(french(**batch).relative)
    torch.testing.assert_close(stitched(**batch).logits, expected)
    assert state_fingerprint(stitched.encoder) == state_fingerprint(french.encoder)
    assert state_fingerprint(stitched.head) == state_fingerprint(english.head)
    assert stitched.config.anchor_texts == ANCHORS_FR
    provenance = stitched.config.provenance
    assert provenance["encoder"]["content_sha256"] == state_fingerprint(french.encoder)
    assert provenance["head"]["content_sha256"] == state_fingerprint(english.head)
    assert provenance["anchor_set_id"] == "en-fr-test@1"
    # The sources are untouched.
    assert state_fingerprint(english.encoder) != state_fingerprint(stitched.encoder)

    stitched.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(**batch).logits, expected)
    assert loaded.config.provenance == provenance


def test_shared_weights_stitching_copies_no_tensor(language_models):
    english, french = language_models
    stitched = stitch(encoder_from=french, head_from=english, share_weights=True)
    assert stitched.head.layers.weight.data_ptr() == english.head.layers.weight.data_ptr()
    backbone = stitched.encoder.backbone.embeddings.word_embeddings.weight
    assert backbone.data_ptr() == french.encoder.backbone.embeddings.word_embeddings.weight.data_ptr()
    assert stitched.config is not french.config and stitched.config.provenance is not None
    assert french.config.provenance is None  # the source's config is untouched
    assert state_fingerprint(stitched) == state_fingerprint(stitch(encoder_from=french, head_from=english))


def test_stitch_from_local_folders_records_them(language_models, tmp_path):
    english, french = language_models
    english.save_pretrained(tmp_path / "en")
    french.save_pretrained(tmp_path / "fr")
    stitched = stitch(encoder_from=tmp_path / "en", head_from=str(tmp_path / "fr"))
    assert stitched.config.provenance["encoder"]["source"] == str(tmp_path / "en")
    assert stitched.config.provenance["head"]["source"] == str(tmp_path / "fr")
    assert state_fingerprint(stitched.head) == state_fingerprint(french.head)


def test_refuses_different_anchor_counts(language_backbones, language_models):
    other = relative_classifier(language_backbones[1], ANCHORS_FR[:5], 3)
    with pytest.raises(StitchingError, match="6 anchors"):
        stitch(encoder_from=language_models[0], head_from=other)


def test_refuses_anchor_sets_not_declared_parallel(language_backbones, language_models):
    other = relative_classifier(language_backbones[1], ANCHORS_FR, 3, anchor_set_id="some-other-set")
    with pytest.raises(StitchingError, match="anchor_set_id"):
        stitch(encoder_from=language_models[0], head_from=other)
    undeclared = relative_classifier(language_backbones[1], ANCHORS_FR, 3, anchor_set_id=None)
    with pytest.raises(StitchingError, match="not declared parallel"):
        stitch(encoder_from=undeclared, head_from=language_models[0])


def test_same_anchor_texts_need_no_declaration(language_backbones):
    a = relative_classifier(language_backbones[0], ANCHORS_EN, 1, anchor_set_id=None)
    b = relative_classifier(language_backbones[0], ANCHORS_EN, 2, anchor_set_id=None)
    assert stitch(encoder_from=a, head_from=b).config.anchor_texts == ANCHORS_EN


def test_refuses_different_label_sets(language_backbones, language_models):
    other = relative_classifier(language_backbones[1], ANCHORS_FR, 3, id2label={0: "neg", 1: "neutral", 2: "pos"})
    with pytest.raises(StitchingError, match="label sets differ"):
        stitch(encoder_from=language_models[0], head_from=other)


def test_refuses_a_head_trained_on_another_normalization(language_backbones, language_models):
    other = relative_classifier(language_backbones[1], ANCHORS_FR, 3, normalization="none")
    with pytest.raises(StitchingError, match="normalization"):
        stitch(encoder_from=other, head_from=language_models[0])


def test_absolute_models_stitch_only_with_equal_sizes_and_a_warning(language_backbones):
    english = relative_classifier(language_backbones[0], None, 1, representation="absolute")
    french = relative_classifier(language_backbones[1], None, 2, representation="absolute")
    with pytest.raises(StitchingError, match="equal latent sizes"):
        stitch(encoder_from=french, head_from=english)
    other_english = relative_classifier(language_backbones[0], None, 3, representation="absolute")
    with pytest.warns(AbsoluteStitchingWarning, match="chance"):
        stitched = stitch(encoder_from=english, head_from=other_english)
    assert state_fingerprint(stitched.head) == state_fingerprint(other_english.head)
    with pytest.raises(StitchingError, match="relative models"):
        stitch(encoder_from=english, head_from=relative_classifier(language_backbones[0], ANCHORS_EN, 4))


def test_refuses_a_model_that_is_not_relative(language_backbones, language_models):
    with pytest.raises(StitchingError, match="from_backbone_pretrained"):
        stitch(encoder_from=BertModel.from_pretrained(language_backbones[0]), head_from=language_models[0])
    with pytest.raises(StitchingError, match="'bert' model"):
        stitch(encoder_from=language_backbones[0], head_from=language_models[0])


def test_content_hash_follows_in_place_changes(language_backbones):
    model = relative_classifier(language_backbones[0], ANCHORS_EN, 5)
    before = state_fingerprint(model.head)
    assert state_fingerprint(model.head) == before
    with torch.no_grad():
        model.head.layers.weight[0, 0] += 1.0
    assert state_fingerprint(model.head) != before
