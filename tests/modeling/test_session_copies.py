"""Models shared across tests are handed out as copies: what one test does to its model, the next never sees."""

import pytest
import torch
from tiny_models import LABELS, TEXT_FAMILY

from hf_relrep import RelativeModelForSequenceClassification


ANCHORS = ["a good film", "a bad film", "the plot was boring", "great fun"]


def _build(folder) -> RelativeModelForSequenceClassification:
    model = RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(folder), anchor_texts=ANCHORS, id2label=LABELS, anchor_set_id="pristine", pooling="mean"
    ).eval()
    with torch.no_grad():
        model.head.layers.weight.fill_(1.0)
    return model


def _edit(model: RelativeModelForSequenceClassification) -> None:
    """Everything a test might do to its model: weights, config, tokenizer, mode, anchors."""
    with torch.no_grad():
        model.head.layers.weight.fill_(-5.0)
        model.encoder.backbone.get_input_embeddings().weight.zero_()
    model.config.anchor_set_id = "edited"
    model.processor.padding_side = "left"
    model.encoder.set_anchors(["i hate it", "a nice story", "not very good", "i love the ending"], model.processor)
    model.train()


def _assert_pristine(model: RelativeModelForSequenceClassification) -> None:
    assert torch.equal(model.head.layers.weight, torch.ones_like(model.head.layers.weight))
    assert model.encoder.backbone.get_input_embeddings().weight.abs().sum() > 0
    assert model.config.anchor_set_id == "pristine" and model.config.anchor_texts == ANCHORS
    assert model.processor.padding_side == "right"
    assert not model.training


@pytest.mark.parametrize("turn", ["first", "second"])
def test_an_edited_session_model_does_not_leak_into_the_next_test(turn, session_model, text_family_folders):
    """Whichever turn runs second would see the other's edits if the fixture handed out one shared model."""
    model = session_model("copy-check", lambda: _build(text_family_folders["bert"]))
    _assert_pristine(model)
    _edit(model)
    assert session_model("copy-check", lambda: pytest.fail("built twice")) is model  # one copy per test and key


def test_a_handed_out_model_is_a_copy_of_the_original(session_model, text_family_folders, _session_models):
    model = session_model("copy-check", lambda: _build(text_family_folders["bert"]))
    original = _session_models["copy-check"]
    assert model is not original
    originals = {tensor.data_ptr() for tensor in original.state_dict().values()}
    assert not originals & {tensor.data_ptr() for tensor in model.state_dict().values()}  # no shared storage
    _edit(model)
    _assert_pristine(original)


@pytest.mark.parametrize("turn", ["first", "second"])
def test_edited_language_models_do_not_leak(turn, language_models, _language_models):
    for model, original in zip(language_models, _language_models, strict=True):
        assert model is not original and model.processor is not original.processor
        torch.testing.assert_close(model.head.layers.weight, original.head.layers.weight)
        assert model.config.anchor_texts == original.config.anchor_texts
        with torch.no_grad():
            model.head.layers.weight.add_(1.0)
        model.config.anchor_texts = ["edited", "anchors"]
    assert not torch.equal(language_models[0].head.layers.weight, _language_models[0].head.layers.weight)


def test_text_families_are_saved_once_per_session(text_family_folders):
    assert set(text_family_folders) == set(TEXT_FAMILY)
    assert all((folder / "config.json").is_file() for folder in text_family_folders.values())
