"""The relative transformations: a pure functional core and the module around it.

A relative representation describes a latent z by its cosine similarities to k anchor latents a_1..a_k. Before the
cosines, latents and anchors may be normalized with the statistics of a reference set B:

- ``"none"``: vanilla relative representation (Moschella et al., ICLR 2023)
  ``T(z) = (cos(z, a_i))_i``, invariant to ``z ↦ αUz`` (U orthogonal, α > 0).
- ``"robust"``: the paper's Def. 3.1 (García-Castellanos et al., 2024): ``ẑ = (z − μ_B) / σ_B``,
  ``â_i = (a_i − μ_B) / σ_B``, ``T(z) = (cos(ẑ, â_i))_i``; invariant to ``z ↦ DPz + h`` (permutation P, invertible
  diagonal D, shift h) applied to z, A and B alike.
- ``"whiten"``: ``ẑ = L⁻¹(z − μ_B)`` with ``Σ_B = LLᵀ``; invariant to every invertible affine map ``z ↦ Mz + h``.

The normalizations and their statistics are registered by name in `hf_relrep.relative.normalizations`; this module
validates the inputs, runs the named normalization and the similarities (`hf_relrep.relative.similarities`).
"""

import math

import torch
from torch import nn

from ..anchors.identity import check_anchor_count
from ..errors import AnchorError, ConfigurationError
from .normalizations import (
    NORMALIZATIONS,
    STATISTICS_SOURCES,
    NormalizationStatistics,
    check_finite_latents,
    compute_statistics,
    working_dtype,
)
from .similarities import relative_vectors, similarity_parts, unit_rows  # noqa: F401 (unit_rows: public here too)


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
    normalize = NORMALIZATIONS[normalization]
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
    check_finite_latents("Latents", latents)
    check_finite_latents("Anchor latents", anchor_latents)
    out_dtype = torch.promote_types(latents.dtype, anchor_latents.dtype)
    dtype = working_dtype(latents, anchor_latents)
    latents, anchor_latents = latents.to(dtype), anchor_latents.to(dtype)
    latents, anchor_latents = normalize.apply(latents, anchor_latents, stats, shrinkage=shrinkage, eps=eps)
    relative = relative_vectors(latents, anchor_latents, similarity, eps=eps, normalized=not normalize.identity)
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
        self.normalization, self.stats, self.momentum = NORMALIZATIONS.check(normalization), stats, momentum
        STATISTICS_SOURCES.check(stats)
        self.shrinkage, self.eps = shrinkage, eps
        if self._keeps_running_statistics():
            # float32 at least, also in a half-precision model (see `_apply`): a variance of |z| ≈ 300 overflows fp16.
            self.register_buffer("running_mean", torch.zeros(latent_size, dtype=torch.float32))
            self.register_buffer("running_cov", torch.eye(latent_size, dtype=torch.float32))
            self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def _keeps_running_statistics(self) -> bool:
        """Whether the statistics source keeps running estimates and the normalization reads statistics at all."""
        return STATISTICS_SOURCES[self.stats].running and not NORMALIZATIONS[self.normalization].identity

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
        check_finite_latents("Statistics samples", samples)
        estimate = compute_statistics(samples.detach(), with_covariance=True)
        estimate = NormalizationStatistics(
            estimate.mean.to(self.running_mean.dtype), estimate.var, estimate.cov.to(self.running_cov.dtype)
        )
        check_finite_latents(f"Running statistics (kept in {self.running_cov.dtype})", estimate.cov)
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
        if self._keeps_running_statistics():
            if self.training:
                reference = STATISTICS_SOURCES[self.stats].samples(latents, anchor_latents)
                stats = compute_statistics(reference, with_covariance=NORMALIZATIONS[self.normalization].covariance)
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
