"""Training the top layers of a backbone on cached hidden states of the layer below (study densification top1/top2)."""

import json

import pytest
import torch
from tiny_models import ANCHORS_EN, LABELS, save_tiny_backbone
from transformers import AutoModel, AutoTokenizer

from hf_relrep import RelativeModelForSequenceClassification
from hf_relrep.errors import AnchorError, ConfigurationError
from hf_relrep.experiments.reproduce.features import FeatureDataset, collate_rows
from hf_relrep.experiments.study.top_layers import hidden_states_below, top_layers


TEXTS = ["the movie is good", "a very bad plot", "fun", "the acting was terrible but the ending was great fun"]


@pytest.fixture(scope="module")
def three_layer_backbone(tmp_path_factory):
    folder = save_tiny_backbone(tmp_path_factory.mktemp("three-layers"), seed=3, num_hidden_layers=3)
    return AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder), folder


@pytest.mark.parametrize("count", [1, 2, 3])
def test_top_layers_on_cached_states_give_the_whole_backbone_output(three_layer_backbone, count):
    backbone, tokenizer, _ = three_layer_backbone
    states = hidden_states_below(backbone, tokenizer, TEXTS, count, prefix="", max_length=32)
    upper = top_layers(backbone, count).eval()
    assert len(upper.encoder.layer) == count and len(backbone.encoder.layer) == 3  # the original is untouched
    with torch.no_grad():
        encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
        whole = backbone(**encoded).last_hidden_state
        cut = upper(**states).last_hidden_state
    width = encoded["attention_mask"].shape[1]
    torch.testing.assert_close(states["attention_mask"][:, :width], encoded["attention_mask"])
    mask = encoded["attention_mask"].bool()
    torch.testing.assert_close(cut[:, :width][mask], whole[mask], rtol=1e-5, atol=1e-5)
    assert all(p.requires_grad for p in upper.parameters())


def test_top_layers_refuse_token_ids_and_impossible_counts(three_layer_backbone):
    backbone, _, _ = three_layer_backbone
    with pytest.raises(ConfigurationError, match="inputs_embeds"):
        top_layers(backbone, 1)(input_ids=torch.ones(1, 3, dtype=torch.long))
    for count in (0, 4):
        with pytest.raises(ConfigurationError, match="top 1..3"):
            top_layers(backbone, count)


def test_a_relative_model_on_top_layers_reads_cached_states_for_inputs_and_anchors(three_layer_backbone):
    backbone, tokenizer, folder = three_layer_backbone
    whole = RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(folder), anchor_texts=ANCHORS_EN, pooling="mean", id2label=LABELS
    ).eval()
    config = whole.config
    config.backbone.num_hidden_layers = 1
    cut = RelativeModelForSequenceClassification(config, backbone=top_layers(whole.encoder.backbone, 1))
    cut.encoder.set_anchors(ANCHORS_EN, tokenizer)
    cut.encoder.set_anchor_inputs(hidden_states_below(backbone, tokenizer, ANCHORS_EN, 1, prefix="", max_length=32))
    cut.head.load_state_dict(whole.head.state_dict())
    cut.eval()
    dataset = FeatureDataset(
        hidden_states_below(backbone, tokenizer, TEXTS, 1, prefix="", max_length=32), [0, 1, 0, 1]
    )
    batch = collate_rows(dataset.__getitems__([1, 2]))  # two short rows: the token axis is cut to the longer one
    assert batch["inputs_embeds"].shape[1] == int(batch["attention_mask"].sum(1).max()) and "labels" in batch
    with torch.no_grad():
        expected = whole(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
        torch.testing.assert_close(cut(**dataset.rows(list(range(4)))).logits, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(AnchorError, match="one row per anchor"):
        cut.encoder.set_anchor_inputs({"inputs_embeds": torch.zeros(2, 3, 32)})


def test_densification_study_trains_the_top_layer_of_both_languages(language_backbones, tmp_path):
    from hf_relrep.experiments.study.densification import run_densification

    english, french = language_backbones
    results = run_densification(tmp_path / "top1", quick=True, encoders={"en": str(english), "fr": str(french)},
                                sizes=[50], trainables=["top1"], settings=["both-default"])  # fmt: skip
    assert [(c["trainable"], c["size"], c["seeds"]) for c in results["cells"]] == [("top1", 50, 2)]
    units = [json.loads(p.read_text()) for p in (tmp_path / "top1" / "units").glob("*.json")]
    assert len(units) == 4
    for unit in units:  # the encoder moved: its latents (the probe's MST edges) changed in both languages
        for language in ("en", "fr"):
            info = unit["models"][language]
            assert info["steps"] >= 15 and info["death_median_after"]["pre"] != info["death_median_before"]["pre"]
