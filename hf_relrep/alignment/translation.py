"""Latent space translation: a map between two absolute latent spaces, fitted on parallel anchors.

After Maiorca et al., "Latent Space Translation via Semantic Alignment" (NeurIPS 2023): standardise both spaces,
solve for a map between the anchors' latents, undo the target's standardisation. The fitted map is an `nn.Module`
whose parameters are buffers, so it saves in safetensors with the model that carries it and is rebuilt empty from
``(method, source_dim, target_dim)`` before its weights load.

Every method computes ``y = s_t · (W (x − μ_s) / s_s + b) + μ_t`` with μ_s, μ_t the anchors' means and

- ``"orthogonal"``: ``s = sqrt((1/k) Σ_i ‖a_i − μ‖²)`` (one scalar per space: the anchors' RMS norm), ``b = 0`` and
  ``W = UVᵀ`` from the SVD ``UΣVᵀ = Ŷᵀ X̂`` of the standardised anchors (Procrustes). For ``d_s ≠ d_t`` the SVD is
  the thin one and W is semi-orthogonal (``WᵀW = I`` when ``d_s ≤ d_t``): the same as zero-padding the smaller space.
  Recovers exactly ``y = αQx + h`` (Q with orthonormal columns, α > 0).
- ``"linear"``: ``s = 1``, ``b = 0``, ``W = argmin ‖X_c Wᵀ − Y_c‖_F`` (least squares, minimum norm when the anchors
  do not determine W). Recovers exactly any ``y = Mx + h``.
- ``"affine"``: ``s = 1``, ``[W b] = argmin ‖[X_c 1][W b]ᵀ − Y_c‖_F``. On centred data the fitted b is zero up to
  rounding, so it equals ``"linear"``; it is kept for parity with the paper's list of methods.

Registry: `TRANSLATION_METHODS` (name → `TranslationMethod`), one entry per method.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import AnchorError, ConfigurationError, NonFiniteError
from ..utils.registry import Registry


Solver = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TranslationMethod:
    """A solver ``(X̂ [k, d_s], Ŷ [k, d_t]) → (W [d_t, d_s], b [d_t])`` (float64) and whether X̂, Ŷ are RMS-scaled."""

    solve: Solver
    scaled: bool = False


TRANSLATION_METHODS: Registry[TranslationMethod] = Registry("translation method")


def register_translation_method(name: str, *, scaled: bool = False) -> Callable[[Solver], Solver]:
    """Add a solver to `TRANSLATION_METHODS`; `scaled` divides each centred space by its anchors' RMS norm first.

    Raises:
        ConfigurationError: `name` is taken.
    """

    def decorator(solver: Solver) -> Solver:
        TRANSLATION_METHODS.register(name, TranslationMethod(solver, scaled))
        return solver

    return decorator


@register_translation_method("orthogonal", scaled=True)
def procrustes(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``W = UVᵀ`` with ``UΣVᵀ = Ŷᵀ X̂`` (thin SVD): the W with orthonormal rows or columns minimising ‖X̂Wᵀ − Ŷ‖_F."""
    u, _, vh = torch.linalg.svd(target.T @ source, full_matrices=False)
    return u @ vh, torch.zeros(target.shape[1], dtype=target.dtype)


@register_translation_method("linear")
def least_squares(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``W = argmin ‖X_c Wᵀ − Y_c‖_F`` (``gelsd``: minimum-norm when under-determined)."""
    solution = torch.linalg.lstsq(source, target, driver="gelsd").solution
    return solution.T, torch.zeros(target.shape[1], dtype=target.dtype)


@register_translation_method("affine")
def least_squares_with_bias(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[W b] = argmin ‖[X_c 1][W b]ᵀ − Y_c‖_F``."""
    design = torch.cat([source, torch.ones(source.shape[0], 1, dtype=source.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, target, driver="gelsd").solution
    return solution[:-1].T, solution[-1]


class LatentTranslation(nn.Module):
    """``y = s_t · (W (x − μ_s) / s_s + b) + μ_t``: a fitted map from a source latent space to a target one.

    Build an empty one with ``LatentTranslation(method, source_dim, target_dim)`` (then load its state dict) or fit
    one with `LatentTranslation.fit` / `fit_translation`. All six tensors are persistent buffers: the module has no
    trainable parameters and saves in safetensors.

    Args:
        method: a name in `TRANSLATION_METHODS`.
        source_dim: d_s, the size of the latents it reads.
        target_dim: d_t, the size of the latents it writes.
    """

    def __init__(self, method: str, source_dim: int, target_dim: int):
        super().__init__()
        if method not in TRANSLATION_METHODS:
            raise ConfigurationError(
                f"Unknown translation method {method!r}; choose one of {', '.join(TRANSLATION_METHODS)}."
            )
        if source_dim < 1 or target_dim < 1:
            raise ConfigurationError(f"Latent sizes must be positive, got {source_dim} and {target_dim}.")
        self.method, self.source_dim, self.target_dim = method, source_dim, target_dim
        self.register_buffer("source_mean", torch.zeros(source_dim))
        self.register_buffer("target_mean", torch.zeros(target_dim))
        self.register_buffer("source_scale", torch.ones(()))
        self.register_buffer("target_scale", torch.ones(()))
        self.register_buffer("weight", torch.zeros(target_dim, source_dim))
        self.register_buffer("bias", torch.zeros(target_dim))

    @classmethod
    def fit(cls, source: torch.Tensor, target: torch.Tensor, *, method: str = "orthogonal") -> "LatentTranslation":
        """Fit the map on parallel anchors: row i of `source` and row i of `target` embed the same anchor.

        Args:
            source: ``[k, d_s]`` the anchors' latents in the source space.
            target: ``[k, d_t]`` the same anchors' latents in the target space.
            method: ``"orthogonal"``, ``"linear"`` or ``"affine"``.

        Returns:
            A `LatentTranslation` on `source`'s device, in float32 (float64 if both inputs are float64).
        """
        if method not in TRANSLATION_METHODS:
            raise ConfigurationError(
                f"Unknown translation method {method!r}; choose one of {', '.join(TRANSLATION_METHODS)}."
            )
        if source.ndim != 2 or target.ndim != 2:
            raise AnchorError(
                f"Anchor latents must be [k, dim]; got shapes {tuple(source.shape)} and {tuple(target.shape)}."
            )
        if source.shape[0] != target.shape[0]:
            raise AnchorError(
                f"{source.shape[0]} source anchors but {target.shape[0]} target anchors: a translation is fitted on "
                "parallel anchors, row i of one space embedding the same anchor as row i of the other."
            )
        if source.shape[0] < 2:
            raise AnchorError(f"Fitting a translation needs at least 2 anchors, got {source.shape[0]}.")
        for name, tensor in (("source", source), ("target", target)):
            if not torch.isfinite(tensor).all():
                raise NonFiniteError(f"The {name} anchor latents contain NaN or infinite values.")
        dtype = torch.float64 if source.dtype == target.dtype == torch.float64 else torch.float32
        x, y = source.detach().cpu().double(), target.detach().cpu().double()
        source_mean, target_mean = x.mean(0), y.mean(0)
        x, y = x - source_mean, y - target_mean
        one = torch.ones((), dtype=torch.float64)
        source_scale, target_scale = one, one
        if TRANSLATION_METHODS[method].scaled:
            source_scale, target_scale = x.square().sum(1).mean().sqrt(), y.square().sum(1).mean().sqrt()
            if source_scale == 0 or target_scale == 0:
                raise AnchorError("All anchors share one latent in a space: there is no scale to match.")
        weight, bias = TRANSLATION_METHODS[method].solve(x / source_scale, y / target_scale)
        module = cls(method, x.shape[1], y.shape[1])
        fitted = {
            "source_mean": source_mean,
            "target_mean": target_mean,
            "source_scale": source_scale,
            "target_scale": target_scale,
            "weight": weight,
            "bias": bias,
        }
        for name, value in fitted.items():
            setattr(module, name, value.to(dtype).contiguous())
        return module.to(source.device)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.shape[-1] != self.source_dim:
            raise AnchorError(
                f"This translation reads {self.source_dim}-dimensional latents, got {latents.shape[-1]}: the encoder "
                "is not the one it was fitted for."
            )
        x = (latents.to(self.weight.dtype) - self.source_mean) / self.source_scale
        translated = (x @ self.weight.T + self.bias) * self.target_scale + self.target_mean
        return translated.to(latents.dtype)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, source_dim={self.source_dim}, target_dim={self.target_dim}"


def fit_translation(source: torch.Tensor, target: torch.Tensor, *, method: str = "orthogonal") -> LatentTranslation:
    """Fit a `LatentTranslation` from `source` latents to `target` latents on parallel anchors.

    ``y = s_t · (W (x − μ_s) / s_s + b) + μ_t``; μ are the anchors' means; ``"orthogonal"``: s = the anchors' RMS
    norm, ``W = UVᵀ`` from ``Ŷᵀ X̂ = UΣVᵀ``; ``"linear"``: s = 1, W by least squares; ``"affine"``: least squares
    with a bias b. See the module docstring.

    Args:
        source: ``[k, d_s]`` anchor latents of the encoder being translated.
        target: ``[k, d_t]`` the same anchors' latents in the space the head reads.
        method: a name in `TRANSLATION_METHODS`.

    Raises:
        AnchorError: shapes that do not pair up, fewer than 2 anchors, a space with no spread.
        ConfigurationError: an unknown method.
        NonFiniteError: NaN or infinite latents.

    Example:

    ```python
    >>> import torch
    >>> from hf_relrep import fit_translation
    >>> source = torch.randn(100, 16)
    >>> target = 2 * source @ torch.linalg.qr(torch.randn(16, 16)).Q + 1
    >>> translation = fit_translation(source, target, method="orthogonal")
    >>> torch.allclose(translation(source), target, atol=1e-4)
    True
    ```
    """
    return LatentTranslation.fit(source, target, method=method)


__all__ = ["TRANSLATION_METHODS", "LatentTranslation", "fit_translation", "register_translation_method"]
