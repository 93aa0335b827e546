"""Numbers: settings validated when they are set, statistics and cosines in float32 whatever the input dtype,
non-finite statistics refused, and the cosine's scale invariance from 1e-30 to 1e30."""

import math

import pytest
import torch

from hf_relrep import RelativeEncoderConfig, RelativeProjection, relative_transform
from hf_relrep.errors import ConfigurationError, NonFiniteError
from hf_relrep.relative.projection import NormalizationStatistics, compute_statistics


def _cloud(seed=0, batch=6, anchors=40, dim=16, scale=1.0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    spread = torch.rand(dim, generator=generator) * 3 + 0.5
    latents = torch.randn(batch, dim, generator=generator) * spread * scale
    anchor_latents = torch.randn(anchors, dim, generator=generator) * spread * scale
    return latents.to(dtype), anchor_latents.to(dtype)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("eps", -1e-5, "eps"),
        ("eps", 0.0, "eps"),
        ("eps", math.nan, "eps"),
        ("eps", math.inf, "eps"),
        ("whiten_shrinkage", 1.5, "whiten_shrinkage"),
        ("whiten_shrinkage", -0.1, "whiten_shrinkage"),
        ("whiten_shrinkage", math.nan, "whiten_shrinkage"),
        ("running_momentum", 0.0, "running_momentum"),
        ("running_momentum", 1.5, "running_momentum"),
        ("running_momentum", math.nan, "running_momentum"),
        ("num_labels", 0, "num_labels"),
        ("classifier_dropout", 1.0, "classifier_dropout"),
        ("anchor_refresh_steps", 0, "anchor_refresh_steps"),
        ("anchor_max_length", 0, "anchor_max_length"),
    ],
)
def test_numeric_settings_are_refused_when_the_config_is_built(setting, value, message):
    from tiny_models import tiny_bert_config

    with pytest.raises(ConfigurationError, match=message):
        RelativeEncoderConfig(backbone=tiny_bert_config(), anchor_texts=["good", "bad"], **{setting: value})


@pytest.mark.parametrize(
    "kwargs", [{"eps": -1.0}, {"eps": math.nan}, {"shrinkage": 2.0}, {"shrinkage": math.nan}, {"momentum": 0.0}]
)
def test_the_module_and_the_function_refuse_them_too(kwargs):
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        RelativeProjection(16, normalization="whiten", stats="running", **kwargs)
    if "momentum" not in kwargs:
        latents, anchors = _cloud()
        with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
            relative_transform(latents, anchors, normalization="whiten", **kwargs)


def test_a_string_is_not_a_list_of_anchors(language_backbones):
    from transformers import AutoTokenizer

    from hf_relrep import RelativeModelForSequenceClassification
    from hf_relrep.errors import AnchorError

    with pytest.raises(AnchorError, match="one string"):
        RelativeModelForSequenceClassification.from_backbone_pretrained(
            str(language_backbones[0]), anchor_texts="goodbad", num_labels=2
        )
    model = RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(language_backbones[0]), anchor_texts=["good", "bad"], num_labels=2
    )
    with pytest.raises(AnchorError, match="one string"):
        model.encoder.set_anchors("ab", AutoTokenizer.from_pretrained(language_backbones[0]))
    assert model.config.anchor_texts == ["good", "bad"]


@pytest.mark.parametrize("normalization", ["none", "robust", "whiten"])
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_latents_give_the_float32_cosines(normalization, half):
    # |z| up to ~300: the variance (~1e5) overflows fp16, which used to zero dimensions silently.
    latents, anchors = _cloud(scale=100.0)
    latents, anchors = latents.to(half).float(), anchors.to(half).float()  # the same values in both runs
    expected = relative_transform(latents, anchors, normalization=normalization)
    got = relative_transform(latents.to(half), anchors.to(half), normalization=normalization, shrinkage=0.0)
    assert got.dtype == half
    # The only difference left is the final cast of the cosines to `half`.
    torch.testing.assert_close(got.float(), expected, atol=1e-2 if half == torch.bfloat16 else 2e-3, rtol=0)


def test_running_statistics_in_half_precision_match_float32():
    latents, anchors = _cloud(scale=100.0)
    references = {}
    for dtype in (torch.float32, torch.float16):
        module = RelativeProjection(16, normalization="robust", stats="running").to(dtype).train()
        module(latents.to(dtype), anchors.to(dtype))
        references[dtype] = module.eval()(latents.to(dtype), anchors.to(dtype)).float()
    torch.testing.assert_close(references[torch.float16], references[torch.float32], atol=5e-3, rtol=0)


@pytest.mark.parametrize("normalization", ["none", "robust", "whiten"])
@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30])
def test_cosines_are_scale_invariant_from_1e_minus_30_to_1e30(normalization, scale):
    latents, anchors = _cloud(dtype=torch.float64)
    expected = relative_transform(latents, anchors, normalization=normalization)
    for dtype in (torch.float32, torch.float64):
        got = relative_transform((latents * scale).to(dtype), (anchors * scale).to(dtype), normalization=normalization)
        assert got.abs().max() > 0.5  # not the all-zero vectors of an overflowed or underflowed norm
        torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=0)


def test_dimensions_1e4_apart_keep_robust_invariant_and_one_1e30_below_the_others_is_dropped():
    latents, anchors = _cloud(dtype=torch.float64)
    expected = relative_transform(latents, anchors, normalization="robust")
    scale = torch.ones(16, dtype=torch.float64)
    scale[0], scale[1] = 1e2, 1e-2  # spreads 1e4 apart: within 1 / eps, the cosines do not move
    got = relative_transform((latents * scale).float(), (anchors * scale).float(), normalization="robust")
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=0)
    # a unit 1e30 below the others (a dead unit) is dropped: the cosines of the other 15 dimensions
    scale = torch.ones(16, dtype=torch.float64) * 1e15
    scale[1] = 1e-15
    got = relative_transform((latents * scale).float(), (anchors * scale).float(), normalization="robust")
    keep = torch.arange(16) != 1
    expected = relative_transform(latents[:, keep], anchors[:, keep], normalization="robust")
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("field", ["mean", "var", "cov"])
def test_non_finite_precomputed_statistics_are_refused(bad, field):
    latents, anchors = _cloud()
    statistics = compute_statistics(anchors, with_covariance=True)
    tensor = getattr(statistics, field).clone()
    tensor.view(-1)[3] = bad
    poisoned = NormalizationStatistics(**{**statistics.__dict__, field: tensor})
    normalization = "whiten" if field == "cov" else "robust"
    with pytest.raises(NonFiniteError, match="statistics"):
        relative_transform(latents, anchors, normalization=normalization, stats=poisoned)


def test_non_finite_running_statistics_are_refused():
    latents, anchors = _cloud()
    module = RelativeProjection(16, normalization="robust", stats="running").train()
    module(latents, anchors)
    module.running_mean[2] = math.nan  # e.g. a checkpoint saved after a diverged step
    with pytest.raises(NonFiniteError, match="statistics"):
        module.eval()(latents, anchors)
    # Non-finite latents never reach the running estimates.
    fresh = RelativeProjection(16, normalization="robust", stats="running").train()
    with pytest.raises(NonFiniteError):
        fresh(torch.full_like(latents, math.inf), anchors)
    assert torch.isfinite(fresh.running_cov).all() and int(fresh.num_batches_tracked) == 0


def test_running_statistics_stay_float32_in_a_half_precision_model_and_overflow_is_refused():
    module = RelativeProjection(16, normalization="robust", stats="running").half()
    assert module.running_cov.dtype == torch.float32
    latents, anchors = _cloud(scale=1e25)  # variances ~1e50: beyond float32
    with pytest.raises(NonFiniteError, match="float32"):
        module.train()(latents, anchors)


def test_whiten_in_half_precision_runs_on_cpu():
    latents, anchors = _cloud()
    for dtype in (torch.float16, torch.bfloat16):
        got = relative_transform(latents.to(dtype), anchors.to(dtype), normalization="whiten", stats="anchors")
        assert got.dtype == dtype and torch.isfinite(got).all()
