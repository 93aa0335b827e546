"""The normalizations N applied to latents and anchors before the similarities, and where their statistics come from.

Each normalization is fitted on a statistics set B (its mean μ_B, per-dimension variance σ²_B or covariance Σ_B):

- ``"none"``: ``N(x) = x`` (vanilla relative representation, Moschella et al., ICLR 2023); B is not read.
- ``"robust"``: ``N(x) = (x − μ_B) / σ_B`` per dimension (the paper's Def. 3.1, García-Castellanos et al., 2024);
  invariant to ``z ↦ DPz + h`` (permutation P, invertible diagonal D, shift h) applied to z, A and B alike.
- ``"whiten"``: ``N(x) = L⁻¹(x − μ_B)`` with ``(1 − λ)Σ_B + λ·tr(Σ_B)/d·I = LLᵀ``; invariant to every invertible
  affine map ``z ↦ Mz + h``.

B is named by a statistics source: ``"anchors"`` (the anchor latents), ``"batch"`` (the incoming latents) or
``"running"`` (running estimates over batch ∪ anchors, kept by `RelativeProjection`), or given as precomputed
`NormalizationStatistics`.

Registries: `NORMALIZATIONS` (name → `Normalization`) and `STATISTICS_SOURCES` (name → `StatisticsSource`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..checks import check_finite, ensure
from ..errors import ConfigurationError, StatisticsError
from ..utils.registry import Registry


@dataclass(frozen=True)
class NormalizationStatistics:
    """Statistics of a reference set B: its mean and either its per-dimension variance or its covariance.

    Attributes:
        mean: ``[d]`` mean μ_B.
        var: ``[d]`` per-dimension (biased) variance σ²_B, for ``"robust"``.
        cov: ``[d, d]`` (biased) covariance Σ_B, for ``"whiten"``; ``None`` when only ``var`` was estimated.
        num_samples: |B|, used to refuse whitening with fewer samples than dimensions.
    """

    mean: torch.Tensor
    var: torch.Tensor
    cov: torch.Tensor | None = None
    num_samples: int | None = None


@dataclass(frozen=True)
class StatisticsSource:
    """Where the statistics set B comes from.

    Attributes:
        samples: ``(latents [n, d], anchor_latents [k, d]) → B``.
        running: B's statistics are folded into running estimates (train mode) and the frozen estimates are used in
            eval mode; only `RelativeProjection`, which keeps them, reads such a source.
    """

    samples: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    running: bool = False


STATISTICS_SOURCES: Registry[StatisticsSource] = Registry("stats")
STATISTICS_SOURCES.register("anchors", StatisticsSource(lambda latents, anchor_latents: anchor_latents))
STATISTICS_SOURCES.register("batch", StatisticsSource(lambda latents, anchor_latents: latents))
STATISTICS_SOURCES.register(
    "running", StatisticsSource(lambda latents, anchor_latents: torch.cat([latents, anchor_latents], dim=0), True)
)


def check_finite_latents(name: str, tensor: torch.Tensor) -> None:
    """NonFiniteError at once on CPU; on accelerators deferred, without host synchronisation (hf_relrep.checks)."""
    check_finite(tensor, name, "check the backbone's outputs (e.g. a fp16 overflow) before the relative transform.")


def working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype statistics and cosines are computed in: float32, or float64 when an input is float64.

    Half-precision latents overflow when squared (fp16 tops out at 65504, so |z| ≈ 256 already does) and half-precision
    linear algebra is missing on CPU; inputs are upcast for the computation and results cast back.
    """
    dtype = torch.float32
    for tensor in tensors:
        if tensor.is_floating_point():
            dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _rescaled(stats: NormalizationStatistics, scale: torch.Tensor) -> NormalizationStatistics:
    """The statistics of the set divided by `scale` (a scalar or per dimension): μ/s, σ²/s², Σ/(s sᵀ)."""
    scale = scale.expand_as(stats.mean)
    cov = None if stats.cov is None else stats.cov / scale[:, None] / scale[None, :]
    return NormalizationStatistics(stats.mean / scale, stats.var / scale.square(), cov, stats.num_samples)


def compute_statistics(samples: torch.Tensor, *, with_covariance: bool = False) -> NormalizationStatistics:
    """Mean, per-dimension variance and optionally covariance of a statistics set.

    ``μ = (1/n) Σ_j b_j``, ``σ² = (1/n) Σ_j (b_j − μ)²``, ``Σ = (1/n) Σ_j (b_j − μ)(b_j − μ)ᵀ`` (biased estimates;
    a common scale factor does not change any cosine). Computed in float32 (float64 for float64 samples) on samples
    divided per dimension by their largest magnitude, then scaled back: half-precision samples and magnitudes up to
    ~1e19 (whose squares still fit in float32) give exact statistics. The result is float32 (or float64).

    Args:
        samples: ``[n, d]`` the statistics set B.
        with_covariance: also compute the ``[d, d]`` covariance (needed by ``"whiten"``).
    """
    if samples.ndim != 2:
        raise StatisticsError(f"The statistics set must be [num_samples, dim], got shape {tuple(samples.shape)}.")
    if samples.shape[0] < 2:
        raise StatisticsError(
            f"Normalization statistics need at least 2 samples, got {samples.shape[0]}. With stats='batch', "
            "use batches of 2 or more, or switch to stats='anchors' or 'running' for single-example inference."
        )
    samples = samples.to(working_dtype(samples))
    scale = samples.detach().abs().amax(0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    unit = samples / scale
    mean = unit.mean(0)
    centered = unit - mean
    var = centered.square().mean(0)
    cov = centered.T @ centered / samples.shape[0] if with_covariance else None
    return _rescaled(NormalizationStatistics(mean, var, cov, samples.shape[0]), 1.0 / scale)


def _standardizer(stats: NormalizationStatistics, eps: float, scale: torch.Tensor, units: torch.Tensor):
    """``x ↦ (x − μ) / σ``, with dimensions set to zero where no scale can be estimated: ``σ ≤ eps · scale`` (constant
    up to rounding), or a spread ``σ · units`` in the caller's units at most `eps` times the largest one (a dead unit,
    e.g. a LayerNorm weight of 1e-33: standardizing it would give it unit variance and gradients ~1/σ)."""
    var = stats.var.detach()
    log_spread = var.log() + 2 * units.detach().log()  # log σ² in the caller's units: no overflow at 1e±30
    informative = (var > (eps * scale.detach()).square()) & (log_spread > 2 * math.log(eps) + log_spread.amax())
    safe_var = torch.where(informative, stats.var, torch.ones_like(stats.var))
    inv_std = torch.where(informative, safe_var.rsqrt(), torch.zeros_like(stats.var))
    return lambda x: (x - stats.mean) * inv_std


def _whitener(stats: NormalizationStatistics, shrinkage: float, eps: float):
    """``x ↦ L⁻¹(x − μ)`` with ``(1 − λ)Σ + λ·tr(Σ)/d·I = LLᵀ`` (any whitening matrix gives the same cosines)."""
    if stats.cov is None:
        raise StatisticsError("Whitening needs the covariance of the statistics set; compute it with_covariance=True.")
    dim = stats.cov.shape[0]
    if shrinkage == 0.0 and stats.num_samples is not None and stats.num_samples <= dim:
        raise StatisticsError(
            f"Whitening a {dim}-dimensional latent needs more than {dim} statistics samples, got {stats.num_samples}"
            ". Use more anchors (stats='anchors') or larger batches, or set a shrinkage > 0 (e.g. 0.1; it gives up "
            "exact affine invariance)."
        )
    cov = stats.cov
    identity = torch.eye(dim, dtype=cov.dtype, device=cov.device)
    if shrinkage > 0.0:
        cov = (1.0 - shrinkage) * cov + shrinkage * (torch.diagonal(cov).mean() * identity)
    chol, info = torch.linalg.cholesky_ex(cov + eps * eps * identity)
    ensure(  # deferred on accelerators: no host synchronisation per step
        info == 0,
        lambda: StatisticsError(
            "The statistics set's covariance is singular (collinear or duplicated latents); set a shrinkage > 0."
        ),
    )

    def whiten(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(chol, (x - stats.mean).T, upper=False).T

    return whiten


def _statistics_set(
    latents: torch.Tensor, anchor_latents: torch.Tensor, stats: str | NormalizationStatistics
) -> tuple[NormalizationStatistics | None, torch.Tensor]:
    """The given statistics in the latents' dtype (None for a named source) and B's per-dimension magnitude."""
    if isinstance(stats, NormalizationStatistics):
        dtype = latents.dtype
        statistics = NormalizationStatistics(
            stats.mean.to(dtype), stats.var.to(dtype), None if stats.cov is None else stats.cov.to(dtype),
            stats.num_samples,
        )  # fmt: skip
        for name in ("mean", "var", "cov"):
            if getattr(statistics, name) is not None:
                check_finite_latents(f"Normalization statistics ({name})", getattr(statistics, name))
        magnitude = (statistics.mean.abs() + statistics.var.clamp(min=0).sqrt()).detach()
    else:
        source = STATISTICS_SOURCES.get(stats)
        if source is None or source.running:
            named = ", ".join(repr(name) for name, entry in STATISTICS_SOURCES.items() if not entry.running)
            raise ConfigurationError(
                f"Unknown stats={stats!r}; choose one of {named} or pass NormalizationStatistics (running estimates "
                "are kept by a RelativeProjection: pass its running_statistics())."
            )
        statistics = None
        magnitude = source.samples(latents, anchor_latents).detach().abs().amax(0)
    if magnitude.shape[-1] != latents.shape[1]:
        raise StatisticsError(f"Statistics have dimension {magnitude.shape[-1]}, latents have {latents.shape[1]}.")
    return statistics, magnitude


def _fitted(statistics, stats, latents, anchor_latents, scale, *, with_covariance: bool) -> NormalizationStatistics:
    """B's statistics in the units of the latents divided by `scale`: computed from a named source, or rescaled."""
    if statistics is None:
        samples = STATISTICS_SOURCES[stats].samples(latents, anchor_latents)
        return compute_statistics(samples, with_covariance=with_covariance)
    return _rescaled(statistics, scale)


def _nonzero(magnitude: torch.Tensor) -> torch.Tensor:
    return torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))


Normalize = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Normalization:
    """A normalization N, fitted on the statistics set and applied to latents and anchors alike.

    Attributes:
        apply: ``(latents [n, d], anchor_latents [k, d], stats, *, shrinkage, eps) → (N(latents), N(anchor_latents))``
            in the working dtype (`working_dtype`); `stats` a `STATISTICS_SOURCES` name or `NormalizationStatistics`.
        identity: N is the identity: the similarities see the raw latents, and no statistics are kept.
        covariance: N needs the covariance Σ_B (not only the variances).
    """

    apply: Normalize
    identity: bool = False
    covariance: bool = False


NORMALIZATIONS: Registry[Normalization] = Registry("normalization")


def register_normalization(name: str, *, identity: bool = False, covariance: bool = False):
    """A decorator that adds the function it decorates to `NORMALIZATIONS` as ``Normalization(function, ...)``.

    Raises:
        ConfigurationError: `name` is taken.
    """

    def decorator(apply: Normalize) -> Normalize:
        NORMALIZATIONS.register(name, Normalization(apply, identity, covariance))
        return apply

    return decorator


@register_normalization("none", identity=True)
def no_normalization(latents, anchor_latents, stats, *, shrinkage: float, eps: float):
    """``N(x) = x``: the statistics set is not read."""
    return latents, anchor_latents


@register_normalization("robust")
def robust_normalization(latents, anchor_latents, stats, *, shrinkage: float, eps: float):
    """``N(x) = (x − μ_B) / σ_B`` per dimension, after dividing everything by B's per-dimension magnitude (N is
    invariant to it, and no square overflows); dimensions without an estimable scale are set to zero."""
    statistics, magnitude = _statistics_set(latents, anchor_latents, stats)
    scale = _nonzero(magnitude)
    latents, anchor_latents = latents / scale, anchor_latents / scale
    statistics = _fitted(statistics, stats, latents, anchor_latents, scale, with_covariance=False)
    if isinstance(stats, NormalizationStatistics):  # B's magnitude, the yardstick for calling a dimension constant
        units = statistics.mean.abs() + statistics.var.sqrt()
    else:
        units = STATISTICS_SOURCES[stats].samples(latents, anchor_latents).abs().amax(0)
    normalize = _standardizer(statistics, eps, units, scale)
    return normalize(latents), normalize(anchor_latents)


@register_normalization("whiten", covariance=True)
def whitening(latents, anchor_latents, stats, *, shrinkage: float, eps: float):
    """``N(x) = L⁻¹(x − μ_B)`` with ``(1 − λ)Σ_B + λ·tr(Σ_B)/d·I = LLᵀ``, after dividing everything by one number, B's
    largest magnitude (the shrinkage target is not invariant to per-dimension scales), then by B's mean spread (so
    that the eps² ridge of the Cholesky is relative to Σ)."""
    statistics, magnitude = _statistics_set(latents, anchor_latents, stats)
    scale = _nonzero(magnitude).amax()
    latents, anchor_latents = latents / scale, anchor_latents / scale
    statistics = _fitted(statistics, stats, latents, anchor_latents, scale, with_covariance=True)
    spread = _nonzero(statistics.var.detach().mean().sqrt())
    latents, anchor_latents, statistics = latents / spread, anchor_latents / spread, _rescaled(statistics, spread)
    normalize = _whitener(statistics, shrinkage, eps)
    return normalize(latents), normalize(anchor_latents)


__all__ = [
    "NORMALIZATIONS",
    "STATISTICS_SOURCES",
    "Normalization",
    "NormalizationStatistics",
    "StatisticsSource",
    "check_finite_latents",
    "compute_statistics",
    "register_normalization",
    "working_dtype",
]
