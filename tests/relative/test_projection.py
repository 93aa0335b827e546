"""The relative transformations: invariances (paper Prop. 3.1 and the whitening extension) and bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_relrep import RelativeProjection, relative_transform
from hf_relrep.errors import AnchorError, ConfigurationError, NonFiniteError, StatisticsError
from hf_relrep.relative import compute_statistics


seeds = st.integers(min_value=0, max_value=2**31 - 1)
dims = st.integers(min_value=2, max_value=24)


def _cloud(seed: int, dim: int, batch: int = 7, anchors: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=generator, dtype=torch.float64) * 3 + 0.2
    latents = torch.randn(batch, dim, generator=generator, dtype=torch.float64) * scales
    anchor_latents = torch.randn(anchors, dim, generator=generator, dtype=torch.float64) * scales
    return latents, anchor_latents


def _permuted_rescaled_shift(seed: int, dim: int):
    """z ↦ DPz + h: a random permutation, an invertible diagonal with both signs, and a shift."""
    generator = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(dim, generator=generator)
    magnitude = torch.exp(torch.empty(dim, dtype=torch.float64).uniform_(-2.0, 2.0, generator=generator))
    sign = torch.where(torch.rand(dim, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    shift = torch.randn(dim, generator=generator, dtype=torch.float64) * 5
    return lambda z: z[:, perm] * (magnitude * sign) + shift


@settings(max_examples=40, deadline=None)
@given(seed=seeds, dim=dims, stats=st.sampled_from(["anchors", "batch"]))
def test_robust_is_invariant_to_permutation_rescaling_and_shift(seed, dim, stats):
    latents, anchors = _cloud(seed, dim)
    transform = _permuted_rescaled_shift(seed, dim)
    before = relative_transform(latents, anchors, normalization="robust", stats=stats)
    after = relative_transform(transform(latents), transform(anchors), normalization="robust", stats=stats)
    torch.testing.assert_close(after, before, atol=1e-9, rtol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, dim=st.integers(min_value=4, max_value=16))
def test_vanilla_is_not_invariant_to_non_isotropic_rescaling(seed, dim):
    latents, anchors = _cloud(seed, dim)
    generator = torch.Generator().manual_seed(seed)
    # Scale half the dimensions by 10 and the rest by 0.1: far from isotropic.
    scale = torch.where(torch.arange(dim) % 2 == 0, 10.0, 0.1).to(torch.float64)[
        torch.randperm(dim, generator=generator)
    ]
    before = relative_transform(latents, anchors, normalization="none")
    after = relative_transform(latents * scale, anchors * scale, normalization="none")
    assert (after - before).abs().max() > 0.05
    # ...while an isotropic rescaling with a rotation leaves it unchanged (what vanilla *is* invariant to).
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    rotated = relative_transform(3.0 * latents @ rotation, 3.0 * anchors @ rotation, normalization="none")
    torch.testing.assert_close(rotated, before, atol=1e-9, rtol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, dim=st.integers(min_value=2, max_value=12), stats=st.sampled_from(["anchors", "batch"]))
def test_whiten_is_invariant_to_every_invertible_affine_map(seed, dim, stats):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(3 * dim + 2, dim, generator=generator, dtype=torch.float64)
    anchors = torch.randn(3 * dim + 1, dim, generator=generator, dtype=torch.float64)
    q1, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    singular = torch.exp(torch.empty(dim, dtype=torch.float64).uniform_(-1.5, 1.5, generator=generator))
    matrix, shift = q1 @ torch.diag(singular) @ q2, torch.randn(dim, generator=generator, dtype=torch.float64)
    before = relative_transform(latents, anchors, normalization="whiten", stats=stats)
    after = relative_transform(
        latents @ matrix.T + shift, anchors @ matrix.T + shift, normalization="whiten", stats=stats
    )
    torch.testing.assert_close(after, before, atol=1e-8, rtol=1e-6)
    # Robust is not invariant to a general (non-diagonal) linear map: whitening covers more.
    robust_before = relative_transform(latents, anchors, normalization="robust", stats=stats)
    robust_after = relative_transform(latents @ matrix.T + shift, anchors @ matrix.T + shift, stats=stats)
    if dim >= 3:
        assert (robust_after - robust_before).abs().max() > 1e-3


def test_output_is_a_cosine_matrix():
    latents, anchors = _cloud(0, 8)
    for normalization in ("none", "robust"):
        relative = relative_transform(latents, anchors, normalization=normalization)
        assert relative.shape == (7, 11)
        assert relative.abs().max() <= 1 + 1e-12
    # An anchor that equals a latent has cosine 1 with it.
    relative = relative_transform(latents, torch.cat([latents[:1], anchors]), normalization="none")
    assert relative[0, 0] == pytest.approx(1.0)


def test_vanilla_matches_plain_cosine():
    latents, anchors = _cloud(3, 5)
    expected = torch.nn.functional.cosine_similarity(latents[:, None], anchors[None], dim=-1)
    torch.testing.assert_close(relative_transform(latents, anchors, normalization="none"), expected)


def test_robust_anchors_equals_standardizing_by_hand():
    latents, anchors = _cloud(4, 6)
    mean, std = anchors.mean(0), anchors.std(0, unbiased=False)
    expected = relative_transform((latents - mean) / std, (anchors - mean) / std, normalization="none")
    torch.testing.assert_close(relative_transform(latents, anchors), expected)


def test_zero_variance_dimensions_are_ignored_not_exploded():
    latents, anchors = _cloud(5, 6)
    anchors_dead = torch.cat([anchors, torch.full((anchors.shape[0], 1), 2.0, dtype=anchors.dtype)], dim=1)
    latents_dead = torch.cat([latents, torch.randn(latents.shape[0], 1, dtype=latents.dtype) * 100], dim=1)
    relative = relative_transform(latents_dead, anchors_dead)
    assert torch.isfinite(relative).all()
    torch.testing.assert_close(relative, relative_transform(latents, anchors))
    anchors_dead.requires_grad_(True)
    relative_transform(latents_dead, anchors_dead).sum().backward()
    assert torch.isfinite(anchors_dead.grad).all()


def test_whiten_shrinkage_allows_few_samples():
    latents, anchors = _cloud(6, 16, anchors=8)
    with pytest.raises(StatisticsError, match="shrinkage"):
        relative_transform(latents, anchors, normalization="whiten")
    relative = relative_transform(latents, anchors, normalization="whiten", shrinkage=0.5)
    assert torch.isfinite(relative).all() and relative.shape == (7, 8)


def test_bad_input_raises_typed_errors_that_say_what_to_do():
    latents, anchors = _cloud(7, 4)
    with pytest.raises(AnchorError, match="at least 2 anchors"):
        relative_transform(latents, anchors[:1])
    with pytest.raises(AnchorError, match="same encoder"):
        relative_transform(latents, anchors[:, :3])
    with pytest.raises(StatisticsError, match="stats='anchors'"):
        relative_transform(latents[:1], anchors, stats="batch")
    bad = latents.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        relative_transform(bad, anchors)
    with pytest.raises(NonFiniteError):
        relative_transform(latents, anchors * float("inf"))
    with pytest.raises(ConfigurationError, match="normalization"):
        relative_transform(latents, anchors, normalization="batchnorm")
    with pytest.raises(ConfigurationError, match="stats"):
        relative_transform(latents, anchors, stats="dataset")
    # Nothing the caller passed was modified.
    assert torch.isnan(bad[0, 0]) and torch.isfinite(latents).all()


def test_running_statistics_update_in_train_and_freeze_in_eval():
    projection = RelativeProjection(4, normalization="robust", stats="running", momentum=0.5)
    latents, anchors = _cloud(8, 4)
    latents, anchors = latents.float(), anchors.float()
    projection.train()
    projection(latents, anchors)
    first_mean = projection.running_mean.clone()
    torch.testing.assert_close(first_mean, torch.cat([latents, anchors]).mean(0))
    projection(latents + 1.0, anchors + 1.0)
    torch.testing.assert_close(projection.running_mean, first_mean + 0.5)
    projection.eval()
    frozen = projection.running_mean.clone()
    single = projection(latents[:1] + 100.0, anchors)  # a batch of one, far away: stats must not move
    torch.testing.assert_close(projection.running_mean, frozen)
    expected = relative_transform(latents[:1] + 100.0, anchors, stats=projection.running_statistics())
    torch.testing.assert_close(single, expected)


def test_compute_statistics_matches_torch():
    samples = torch.randn(50, 3, dtype=torch.float64)
    stats = compute_statistics(samples, with_covariance=True)
    torch.testing.assert_close(stats.mean, samples.mean(0))
    torch.testing.assert_close(stats.var, samples.var(0, unbiased=False))
    torch.testing.assert_close(stats.cov, torch.cov(samples.T, correction=0))


def test_a_dead_unit_is_dropped_and_gives_finite_moderate_gradients():
    """A unit scaled to ~1e-32 (a LayerNorm weight of ~1e-33, as in all-MiniLM-L6-v2) carries no usable scale: robust
    drops it instead of standardizing it to unit variance, and gradients through the transform stay moderate."""
    latents, anchors = _cloud(6, 6)
    tiny = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1e-32], dtype=latents.dtype)
    latents_dead = (latents * tiny).requires_grad_(True)
    relative = relative_transform(latents_dead, anchors * tiny)
    torch.testing.assert_close(relative, relative_transform(latents[:, :5], anchors[:, :5]))
    relative.sum().backward()
    assert latents_dead.grad.abs().max() < 1e3
