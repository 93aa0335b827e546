"""RelativeModelForSequenceClassification on one BERT: backbone weights, loss, anchor caches, refusals, config checks.

The checks every configuration passes on every backbone family (shapes, save/load through the Auto classes, batch of
one, invariance, self-stitching, gradients) are in ``test_classifier_matrix.py``.
"""

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import save_tiny_backbone, tiny_bert_config
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification
from hf_relrep.errors import AnchorError, ConfigurationError, StatisticsError


ANCHORS = [
    "a good film",
    "a bad film",
    "the plot was boring",
    "great acting",
    "terrible ending",
    "i love this movie",
    "i hate this story",
    "fine but not great",
    "the worst film",
    "the best story",
    "very nice actor",
    "awful and boring",
]
TEXTS = ["the movie was great", "a terrible boring plot", "not bad", "i love the ending", "fun"]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return AutoTokenizer.from_pretrained(backbone_dir)


def _model(backbone_dir, **kwargs) -> RelativeModelForSequenceClassification:
    torch.manual_seed(0)
    kwargs.setdefault("anchor_texts", ANCHORS)
    kwargs.setdefault("num_labels", 3)
    return RelativeModelForSequenceClassification.from_backbone_pretrained(str(backbone_dir), **kwargs)


def _batch(tokenizer, texts=TEXTS):
    return tokenizer(texts, padding=True, return_tensors="pt")


def test_wrapping_keeps_the_pretrained_backbone_weights(backbone_dir):
    reference = AutoModel.from_pretrained(backbone_dir, add_pooling_layer=False).state_dict()
    wrapped = _model(backbone_dir).encoder.backbone.state_dict()
    assert wrapped.keys() == reference.keys()  # no unused pooler: the model pools itself
    for key, value in reference.items():
        torch.testing.assert_close(wrapped[key], value, msg=key)


def test_output_fields_and_loss(backbone_dir, tokenizer):
    model = _model(backbone_dir)
    labels = torch.tensor([0, 1, 2, 1, 0])
    output = model(**_batch(tokenizer), labels=labels)
    assert output.logits.shape == (5, 3)
    assert output.latents.shape == (5, 32)
    assert output.relative.shape == (5, len(ANCHORS))
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    output.loss.backward()
    assert model.encoder.backbone.embeddings.word_embeddings.weight.grad is not None


def test_absolute_mode_is_the_plain_baseline(backbone_dir, tokenizer):
    model = _model(backbone_dir, representation="absolute", anchor_texts=None)
    output = model(**_batch(tokenizer))
    assert output.relative is None
    assert model.head.layers.in_features == 32
    torch.testing.assert_close(output.logits, model.head(output.latents))


def test_anchor_latents_are_cached_in_eval_and_recomputed_in_train(backbone_dir, tokenizer):
    model = _model(backbone_dir)
    calls = []
    model.encoder.backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    model.eval()
    model(**_batch(tokenizer))
    model(**_batch(tokenizer))
    assert len(calls) == 3  # anchors once (one chunk), then one call per batch
    model.train()
    calls.clear()
    model(**_batch(tokenizer))
    model(**_batch(tokenizer))
    assert len(calls) == 4  # anchors re-embedded every step: the weights may have changed


def test_frozen_backbone_embeds_anchors_once_and_trains_the_adapter(backbone_dir, tokenizer):
    model = _model(backbone_dir, adapter="mlp")
    model.encoder.backbone.requires_grad_(False)
    calls = []
    model.encoder.backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    model.train()
    for _ in range(3):
        model(**_batch(tokenizer), labels=torch.tensor([0, 1, 2, 1, 0])).loss.backward()
    assert len(calls) == 1 + 3
    assert model.encoder.adapter[0].weight.grad is not None


def test_repeated_train_calls_keep_the_anchor_caches(backbone_dir, tokenizer):
    # Trainer calls model.train() before every step: that must not throw the caches away.
    frozen = _model(backbone_dir)
    frozen.encoder.backbone.requires_grad_(False)
    calls = []
    frozen.encoder.backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    for _ in range(2):
        frozen.train()
        frozen(**_batch(tokenizer))
    assert len(calls) == 1 + 2  # anchors embedded once

    refreshed = _model(backbone_dir, anchor_refresh_steps=3)
    calls = []
    refreshed.encoder.backbone.register_forward_hook(lambda module, args, output: calls.append(1))
    for _ in range(3):
        refreshed.train()
        refreshed(**_batch(tokenizer))
    assert len(calls) == 1 + 3  # only the first of three steps re-embeds the anchors


def test_precomputed_backbone_features_skip_the_backbone(backbone_dir, tokenizer):
    model = _model(backbone_dir, pooling="mean").eval()
    batch = _batch(tokenizer)
    hidden = model.encoder.backbone(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    features = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(model(backbone_features=features).logits, model(**batch).logits)


def test_whitening_with_too_few_anchors_says_how_to_fix(backbone_dir, tokenizer):
    model = _model(backbone_dir, normalization="whiten").eval()  # 12 anchors < 32 dimensions
    with pytest.raises(StatisticsError, match="shrinkage"):
        model(**_batch(tokenizer))


def test_bad_configurations_are_refused_early(backbone_dir):
    with pytest.raises(AnchorError, match="at least 2"):
        _model(backbone_dir, anchor_texts=["only one"])
    with pytest.raises(AnchorError, match="anchor_texts"):
        _model(backbone_dir, anchor_texts=None)
    with pytest.raises(ConfigurationError, match="pooling"):
        RelativeEncoderConfig(backbone=tiny_bert_config(), anchor_texts=ANCHORS, pooling="first")
    with pytest.raises(ConfigurationError, match="normalization"):
        RelativeEncoderConfig(backbone=tiny_bert_config(), anchor_texts=ANCHORS, normalization="l2")
    with pytest.raises(ConfigurationError, match="stats"):
        RelativeEncoderConfig(backbone=tiny_bert_config(), anchor_texts=ANCHORS, stats="epoch")
    model = _model(backbone_dir)
    with pytest.raises(AnchorError, match="12 anchors"):
        model.encoder.set_anchors(ANCHORS[:5], AutoTokenizer.from_pretrained(backbone_dir))
    assert model.config.anchor_texts == ANCHORS  # the refused call lost nothing


def test_edited_anchor_texts_are_detected_on_load(backbone_dir, tmp_path):
    import json

    _model(backbone_dir).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["anchor_texts"][0] = "something else"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(AnchorError, match="anchor_fingerprint.*set_anchors"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)


def test_unknown_config_keys_from_a_newer_version_load_with_a_warning(backbone_dir, tokenizer, tmp_path):
    import json

    model = _model(backbone_dir).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["relative_temperature"] = 0.5  # a setting some future version might write
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="relative_temperature"):
        loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(**_batch(tokenizer)).logits, model(**_batch(tokenizer)).logits)


def test_anchor_ids_are_saved_in_the_weights(backbone_dir, tokenizer, tmp_path):
    _model(backbone_dir).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    expected = tokenizer(ANCHORS, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    torch.testing.assert_close(weights["encoder.anchor_input_ids"], expected["input_ids"])
