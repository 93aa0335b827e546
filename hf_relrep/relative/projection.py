"""The relative transformations: a pure functional core and the module around it.

A relative representation describes a latent z by its cosine similarities to k anchor latents a_1..a_k. Before the
cosines, latents and anchors may be normalized with the statistics of a reference set B:

- ``"none"``: vanilla relative representation (Moschella et al., ICLR 2023)
  ``T(z) = (cos(z, a_i))_i``, invariant to ``z ↦ αUz`` (U orthogonal, α > 0).
- ``"robust"``: the paper's Def. 3.1 (García-Castellanos et al., 2024): ``ẑ = (z − μ_B) / σ_B``,
  ``â_i = (a_i − μ_B) / σ_B``, ``T(z) = (cos(ẑ, â_i))_i``; invariant to ``z ↦ DPz + h`` (permutation P, invertible
  diagonal D, shift h) applied to z, A and B alike.
- ``"whiten"``: ``ẑ = L⁻¹(z − μ_B)`` with ``Σ_B = LLᵀ``; invariant to every invertible affine map ``z ↦ Mz + h``.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_finite, ensure
from ..errors import AnchorError, ConfigurationError, StatisticsError
from .similarities import relative_vectors, similarity_parts, unit_rows  # noqa: F401 (unit_rows: public here too)


MIN_ANCHORS = 2
NORMALIZATIONS = ("none", "robust", "whiten")
STATISTICS_SOURCES = ("anchors", "batch")


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


def _check_finite(name: str, tensor: torch.Tensor) -> None:
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


def check_settings(*, eps: float, shrinkage: float = 0.0, momentum: float | None = None) -> None:
    """Refuse numeric settings outside their range: ``eps > 0`` finite, ``shrinkage ∈ [0, 1]``, ``momentum ∈ (0, 1]``.

    Raises:
        ConfigurationError: naming the setting, the value and the valid range.
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ConfigurationError(f"eps must be a finite number > 0 (e.g. 1e-5), got {eps!r}.")
    if not (isinstance(shrinkage, (int, float)) and 0.0 <= shrinkage <= 1.0):
        raise ConfigurationError(f"shrinkage must lie in [0, 1] (0 keeps exact affine invariance), got {shrinkage!r}.")
    if momentum is not None and not (isinstance(momentum, (int, float)) and 0.0 < momentum <= 1.0):
        raise ConfigurationError(f"momentum must lie in (0, 1] (the paper's code uses 0.3), got {momentum!r}.")


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


def _magnitude(statistics, stats, latents, anchor_latents) -> torch.Tensor:
    """Per-dimension magnitude of the statistics set, the yardstick for calling a dimension constant."""
    if isinstance(stats, NormalizationStatistics):
        return statistics.mean.abs() + statistics.var.sqrt()
    samples = anchor_latents if stats == "anchors" else latents
    return samples.abs().amax(0)


def check_anchor_count(count: int, *, fix: str = "pass more anchors") -> None:
    """Refuse fewer than `MIN_ANCHORS` anchors: one anchor gives a constant relative vector.

    Raises:
        AnchorError: naming the count and `fix`, what the caller can do about it.
    """
    if count < MIN_ANCHORS:
        raise AnchorError(f"A relative representation needs at least {MIN_ANCHORS} anchors, got {count}; {fix}.")


def relative_transform(
    latents: torch.Tensor,
    anchor_latents: torch.Tensor,
    *,
    normalization: str = "robust",
    stats: str | NormalizationStatistics = "anchors",
    shrinkage: float = 0.0,
    eps: float = 1e-5,
    similarity: str | tuple[str, ...] = "cosine",
) -> torch.Tensor:
    """Relative representation of `latents` with respect to `anchor_latents`.

    ``T(z)_i = cos(N(z), N(a_i)) = ⟨N(z), N(a_i)⟩ / (‖N(z)‖ ‖N(a_i)‖)`` where N is

    - ``"none"``: the identity (vanilla relative representation);
    - ``"robust"``: ``N(x) = (x − μ_B) / σ_B``, per-dimension, no learned affine (paper Def. 3.1);
    - ``"whiten"``: ``N(x) = L⁻¹(x − μ_B)`` with ``(1 − λ)Σ_B + λ·tr(Σ_B)/d·I = LLᵀ``.

    Dimensions that are constant over B — standard deviation ≤ `eps` × their largest magnitude over B, i.e. at the
    level of rounding noise: dead units, a constant coordinate — are set to zero in both latents and anchors by
    ``"robust"``: no scale can be estimated for them, and dividing by a noise-level σ would let one dead unit dominate
    every norm. The threshold is relative, so it commutes with per-dimension rescaling. So are dimensions whose
    standard deviation is at most `eps` × the largest one's (a unit whose LayerNorm weight is ~1e-33, as three of
    all-MiniLM-L6-v2's are): standardized, they would count like any other, and the gradient through them, ~1/σ,
    would overflow any gradient norm and stall fine-tuning. Invariance to per-dimension rescaling therefore holds
    for rescalings whose ratio stays within 1 / `eps`. A zero vector after normalization has cosine 0 with
    everything.

    Args:
        latents: ``[batch, d]`` latents z.
        anchor_latents: ``[k, d]`` anchor latents, k ≥ 2.
        normalization: ``"none"``, ``"robust"`` or ``"whiten"``.
        stats: the statistics set B: ``"anchors"`` (the default; independent of the batch), ``"batch"`` (the
            incoming latents, the paper's definition; needs a batch of 2 or more), or precomputed
            [`NormalizationStatistics`] (e.g. running estimates). Ignored by ``"none"``.
        shrinkage: λ for ``"whiten"``; 0 keeps exact affine invariance but needs |B| > d.
        eps: relative threshold on σ_B below which a dimension counts as constant, and the floor of the cosine's
            norms.
        similarity: ``"cosine"`` (the default, as above), ``"euclidean"``, ``"l1"`` or ``"linf"`` (the negative
            distance ``−‖N(z) − N(a_i)‖_p``), or a tuple of them: a product space, each part standardized per row
            and concatenated (`hf_relrep.relative.similarities`).

    Returns:
        ``[batch, k]`` cosine similarities in [-1, 1] (``[batch, k · len(similarity)]`` for a tuple).

    Example:

    ```python
    >>> import torch
    >>> from hf_relrep import relative_transform
    >>> z, anchors = torch.randn(4, 16), torch.randn(10, 16)
    >>> relative_transform(z, anchors, normalization="robust", stats="anchors").shape
    torch.Size([4, 10])
    ```
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigurationError(f"Unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}.")
    similarity_parts(similarity)
    if latents.ndim != 2 or anchor_latents.ndim != 2:
        raise AnchorError(
            f"latents and anchor_latents must be 2-D [n, dim], got {tuple(latents.shape)} and "
            f"{tuple(anchor_latents.shape)}."
        )
    check_anchor_count(anchor_latents.shape[0])
    if latents.shape[1] != anchor_latents.shape[1]:
        raise AnchorError(
            f"Latents have dimension {latents.shape[1]} but anchors have {anchor_latents.shape[1]}: embed the anchors "
            "with the same encoder (and pooling) as the inputs."
        )
    check_settings(eps=eps, shrinkage=shrinkage)
    _check_finite("Latents", latents)
    _check_finite("Anchor latents", anchor_latents)
    out_dtype = torch.promote_types(latents.dtype, anchor_latents.dtype)
    dtype = working_dtype(latents, anchor_latents)
    latents, anchor_latents = latents.to(dtype), anchor_latents.to(dtype)

    if normalization == "none":
        return relative_vectors(latents, anchor_latents, similarity, eps=eps).to(out_dtype)

    if isinstance(stats, NormalizationStatistics):
        statistics = NormalizationStatistics(
            stats.mean.to(dtype), stats.var.to(dtype), None if stats.cov is None else stats.cov.to(dtype),
            stats.num_samples,
        )  # fmt: skip
        for name in ("mean", "var", "cov"):
            if getattr(statistics, name) is not None:
                _check_finite(f"Normalization statistics ({name})", getattr(statistics, name))
        magnitude = (statistics.mean.abs() + statistics.var.clamp(min=0).sqrt()).detach()
    elif stats in STATISTICS_SOURCES:
        statistics = None
        magnitude = (anchor_latents if stats == "anchors" else latents).detach().abs().amax(0)
    else:
        raise ConfigurationError(
            f"Unknown stats={stats!r}; choose 'anchors', 'batch' or pass NormalizationStatistics."
        )
    if magnitude.shape[-1] != latents.shape[1]:
        raise StatisticsError(f"Statistics have dimension {magnitude.shape[-1]}, latents have {latents.shape[1]}.")
    # Divide everything by the statistics set's magnitude before any square: per dimension for "robust" (invariant to
    # it), by one number for "whiten" (its shrinkage target is not invariant to per-dimension scales).
    scale = torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))
    if normalization == "whiten":
        scale = scale.amax()
    latents, anchor_latents = latents / scale, anchor_latents / scale
    if statistics is None:
        samples = anchor_latents if stats == "anchors" else latents
        statistics = compute_statistics(samples, with_covariance=normalization == "whiten")
    else:
        statistics = _rescaled(statistics, scale)
    if normalization == "robust":
        normalize = _standardizer(statistics, eps, _magnitude(statistics, stats, latents, anchor_latents), scale)
    else:
        # One more global factor: unit mean variance, so that the eps² ridge of the Cholesky is relative to Σ.
        spread = statistics.var.detach().mean().sqrt()
        spread = torch.where(spread > 0, spread, torch.ones_like(spread))
        latents, anchor_latents, statistics = latents / spread, anchor_latents / spread, _rescaled(statistics, spread)
        normalize = _whitener(statistics, shrinkage, eps)
    latents, anchor_latents = normalize(latents), normalize(anchor_latents)
    relative = relative_vectors(latents, anchor_latents, similarity, eps=eps, normalized=True)
    return relative.to(out_dtype)


class RelativeProjection(nn.Module):
    """The relative transform as a module, with running statistics for ``stats="running"``.

    With ``stats="running"`` the module behaves like a non-affine ``BatchNorm1d`` around the statistics set
    B = (batch latents ∪ anchor latents): in train mode it normalizes with the statistics of that set and updates the
    running estimates, ``r ← (1 − m)·r + m·estimate``; in eval mode it normalizes with the frozen running estimates.
    Including the anchors keeps train mode usable with a batch of one.

    Args:
        latent_size: d, the latent dimension (sizes the running buffers).
        normalization: ``"none"``, ``"robust"`` or ``"whiten"``.
        stats: ``"anchors"``, ``"batch"`` or ``"running"``.
        momentum: m for the running estimates.
        shrinkage: λ for ``"whiten"``.
        eps: see [`relative_transform`].
        similarity: see [`relative_transform`].
    """

    def __init__(
        self,
        latent_size: int,
        *,
        normalization: str = "robust",
        stats: str = "anchors",
        momentum: float = 0.3,
        shrinkage: float = 0.0,
        eps: float = 1e-5,
        similarity: str | tuple[str, ...] = "cosine",
    ):
        super().__init__()
        parts = similarity_parts(similarity)
        self.similarity = similarity if isinstance(similarity, str) else parts
        check_settings(eps=eps, shrinkage=shrinkage, momentum=momentum)
        if normalization not in NORMALIZATIONS:
            raise ConfigurationError(f"Unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}.")
        if stats not in STATISTICS_SOURCES + ("running",):
            raise ConfigurationError(f"Unknown stats {stats!r}; choose 'anchors', 'batch' or 'running'.")
        self.normalization, self.stats, self.momentum = normalization, stats, momentum
        self.shrinkage, self.eps = shrinkage, eps
        if stats == "running" and normalization != "none":
            # float32 at least, also in a half-precision model (see `_apply`): a variance of |z| ≈ 300 overflows fp16.
            self.register_buffer("running_mean", torch.zeros(latent_size, dtype=torch.float32))
            self.register_buffer("running_cov", torch.eye(latent_size, dtype=torch.float32))
            self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def _apply(self, fn, recurse: bool = True):
        """As `nn.Module._apply` (``.to()``, ``.half()``, ...), but the running statistics stay float32 or wider."""
        super()._apply(fn, recurse)
        for name in ("running_mean", "running_cov"):
            buffer = self._buffers.get(name)
            if buffer is not None and buffer.is_floating_point() and buffer.dtype in (torch.float16, torch.bfloat16):
                self._buffers[name] = buffer.float()
        return self

    def reset_running_stats(self) -> None:
        """Forget the running estimates (mean 0, identity covariance)."""
        if hasattr(self, "running_mean"):
            self.running_mean.zero_()
            self.running_cov.copy_(torch.eye(self.running_cov.shape[0], device=self.running_cov.device))
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def update_running_stats(self, samples: torch.Tensor) -> None:
        """Fold the statistics of `samples` ``[n, d]`` into the running estimates (what a statistics sub-batch does)."""
        _check_finite("Statistics samples", samples)
        estimate = compute_statistics(samples.detach(), with_covariance=True)
        estimate = NormalizationStatistics(
            estimate.mean.to(self.running_mean.dtype), estimate.var, estimate.cov.to(self.running_cov.dtype)
        )
        _check_finite(f"Running statistics (kept in {self.running_cov.dtype})", estimate.cov)
        if self.num_batches_tracked.item() == 0:
            self.running_mean.copy_(estimate.mean)
            self.running_cov.copy_(estimate.cov)
        else:
            self.running_mean.lerp_(estimate.mean, self.momentum)
            self.running_cov.lerp_(estimate.cov, self.momentum)
        self.num_batches_tracked += 1

    def running_statistics(self) -> NormalizationStatistics:
        """The frozen running estimates as [`NormalizationStatistics`]."""
        return NormalizationStatistics(
            mean=self.running_mean, var=torch.diagonal(self.running_cov), cov=self.running_cov, num_samples=None
        )

    def forward(self, latents: torch.Tensor, anchor_latents: torch.Tensor) -> torch.Tensor:
        stats: str | NormalizationStatistics = self.stats
        if self.stats == "running" and self.normalization != "none":
            if self.training:
                reference = torch.cat([latents, anchor_latents], dim=0)
                stats = compute_statistics(reference, with_covariance=self.normalization == "whiten")
                self.update_running_stats(reference)
            else:
                stats = self.running_statistics()
        return relative_transform(
            latents,
            anchor_latents,
            normalization=self.normalization,
            stats=stats,
            shrinkage=self.shrinkage,
            eps=self.eps,
            similarity=self.similarity,
        )

    def extra_repr(self) -> str:
        similarity = "" if self.similarity == "cosine" else f", similarity={self.similarity!r}"
        return f"normalization={self.normalization!r}, stats={self.stats!r}{similarity}"
