"""RelativeModelForSequenceClassification: wrapping a backbone, Auto classes, save/load, anchors, intertwiners."""

import copy

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import save_tiny_backbone, tiny_bert_config
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import (
    AnchorError,
    ConfigurationError,
    RelativeEncoderConfig,
    RelativeModel,
    RelativeModelForSequenceClassification,
    StatisticsError,
)


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


@pytest.mark.parametrize("normalization", ["none", "robust", "whiten"])
@pytest.mark.parametrize("stats", ["anchors", "batch", "running"])
def test_save_and_load_through_auto_classes(backbone_dir, tokenizer, tmp_path, normalization, stats):
    extra = {"whiten_shrinkage": 0.5} if normalization == "whiten" else {}
    model = _model(backbone_dir, normalization=normalization, stats=stats, pooling="mean", **extra)
    if stats == "running":
        model.train()
        model(**_batch(tokenizer))  # put something in the running estimates
    model.eval()
    logits = model(**_batch(tokenizer)).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(loaded) is RelativeModelForSequenceClassification
    assert loaded.config.anchor_texts == ANCHORS
    assert loaded.config.anchor_fingerprint == model.config.anchor_fingerprint
    assert loaded.config.hf_relrep_version is not None
    torch.testing.assert_close(loaded.encoder.anchor_input_ids, model.encoder.anchor_input_ids)
    torch.testing.assert_close(loaded(**_batch(tokenizer)).logits, logits)

    encoder_side = AutoModel.from_pretrained(tmp_path)
    assert type(encoder_side) is RelativeModel
    torch.testing.assert_close(encoder_side(**_batch(tokenizer)).relative, model(**_batch(tokenizer)).relative)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), RelativeEncoderConfig)


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


@pytest.mark.parametrize("stats", ["anchors", "running"])
def test_batch_of_one_at_inference(backbone_dir, tokenizer, stats):
    model = _model(backbone_dir, stats=stats)
    if stats == "running":
        model.train()
        model(**_batch(tokenizer))
    model.eval()
    single = model(**_batch(tokenizer, TEXTS[:1])).logits
    in_batch = model(**_batch(tokenizer, TEXTS[:1] * 2)).logits[:1]
    torch.testing.assert_close(single, in_batch)


def test_batch_of_one_with_batch_statistics_is_refused(backbone_dir, tokenizer):
    model = _model(backbone_dir, stats="batch").eval()
    with pytest.raises(StatisticsError, match="stats='anchors'"):
        model(**_batch(tokenizer, TEXTS[:1]))


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


def _intertwined(model: RelativeModelForSequenceClassification, seed: int = 0):
    """The same network with its latent space relabelled and rescaled: z ↦ DPz + h at the adapter's output.

    The last Linear of the adapter becomes W' = DPW, b' = DPb + h, so every latent (inputs and anchors alike) moves by
    the same map — what two networks differing by an intertwiner of their activations look like.
    """
    generator = torch.Generator().manual_seed(seed)
    other = copy.deepcopy(model)
    layer = other.encoder.adapter[2]
    assert model.encoder.anchor_latents().std(0).min() > 1e-2  # latents that really vary, so float32 is no issue
    dim = layer.out_features
    perm = torch.randperm(dim, generator=generator)
    diag = torch.exp(torch.empty(dim).uniform_(-2.0, 2.0, generator=generator))
    diag = diag * torch.where(torch.rand(dim, generator=generator) < 0.5, -1.0, 1.0)
    shift = 3.0 * torch.randn(dim, generator=generator)
    with torch.no_grad():
        layer.weight.copy_(diag[:, None] * layer.weight[perm])
        layer.bias.copy_(diag * layer.bias[perm] + shift)
    other.encoder.clear_anchor_cache()
    return other


def _adapter_model(backbone_dir, **kwargs) -> RelativeModelForSequenceClassification:
    model = _model(backbone_dir, adapter="mlp", pooling="mean", **kwargs).eval()
    with torch.no_grad():  # visible weights, so that latents and logits vary well above float32 rounding
        for layer in (model.encoder.adapter[0], model.encoder.adapter[2], model.head.layers):
            layer.weight.normal_(0, 1.0)
    model.encoder.clear_anchor_cache()
    return model


@pytest.mark.parametrize("stats", ["anchors", "batch"])
def test_intertwined_networks_predict_identically_under_robust_not_vanilla(backbone_dir, tokenizer, stats):
    batch = _batch(tokenizer)
    robust = _adapter_model(backbone_dir, normalization="robust", stats=stats)
    torch.testing.assert_close(_intertwined(robust)(**batch).logits, robust(**batch).logits, atol=1e-4, rtol=1e-4)

    vanilla = _adapter_model(backbone_dir, normalization="none")
    moved, original = _intertwined(vanilla)(**batch), vanilla(**batch)
    assert (moved.relative - original.relative).abs().max() > 1e-2  # 100× the tolerance robust meets
    assert (moved.logits - original.logits).abs().max() > 1e-2
