"""Intertwiner groups of activations, the transformations the invariance study applies, and what theory predicts.

For an activation σ, G_σ = {A : σ(Au) = ρ(A)σ(u) for all u}. Replacing the weights of the layer before the relative
step by ``(A W, A b)`` maps the latent ``z = σ(Wh + b)`` to ``ρ(A) z`` and leaves everything before unchanged: two
networks that differ only by a relabelling and rescaling of hidden units. Generators:

- ReLU, LeakyReLU: permutations and positive diagonal scalings (ρ(DP) = DP);
- Tanh (odd): permutations and sign flips (ρ(SP) = SP);
- GELU, SiLU, ELU: permutations only.

The maps each normalization of the relative step is invariant to, when the anchors and the statistics set transform
with the latent: none — z ↦ αUz (U orthogonal, α > 0: cosines ignore rotations and rescalings); robust — z ↦ DPz + h
(P a permutation, D invertible diagonal, h a shift: per-dimension standardization removes D and h, García-Castellanos
et al. 2024, Prop. 3.1); whiten — every invertible affine map z ↦ Mz + h (Σ'^(-1/2) M Σ^(1/2) is orthogonal; exact
only without shrinkage).
"""

import math
from dataclasses import dataclass

import torch

from .networks import DTYPE, RelativeMLP, clone


#: The generators of each activation's intertwiner group.
INTERTWINER_GROUPS: dict[str, tuple[str, ...]] = {
    "relu": ("permutation", "diagonal_scaling"),
    "leaky_relu": ("permutation", "diagonal_scaling"),
    "gelu": ("permutation",),
    "silu": ("permutation",),
    "elu": ("permutation",),
    "tanh": ("permutation", "sign_flip"),
}

#: Which latent maps each normalization is invariant to in theory (and, below, which group elements follow).
NORMALIZATION_INVARIANCES: dict[str, tuple[str, ...]] = {
    "none": ("permutation", "sign_flip", "isotropic_scaling", "rotation"),
    "robust": ("permutation", "sign_flip", "isotropic_scaling", "diagonal_scaling", "shift"),
    "whiten": ("permutation", "sign_flip", "isotropic_scaling", "diagonal_scaling", "rotation", "shift", "affine"),
}


@dataclass(frozen=True)
class Transform:
    """One family of transformations: where it acts and what it is."""

    name: str
    level: str  # "pre": the last layer's weights (z = σ(A u)); "latent": z ↦ Mz + h
    kind: str  # the map's class, a key of NORMALIZATION_INVARIANCES' vocabulary
    description: str


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("intertwiner", "pre", "group", "a random element of the activation's intertwiner group"),
        Transform("permutation", "pre", "permutation", "permute the hidden units"),
        Transform("sign_flip", "pre", "sign_flip", "flip the sign of a random half of the units, permute"),
        Transform("diagonal_scaling", "pre", "diagonal_scaling", "scale each unit by e^U(-ln 4, ln 4), permute"),
        Transform("rotation", "pre", "rotation", "rotate the pre-activations (random orthogonal matrix)"),
        Transform("shift", "pre", "shift", "shift the biases by N(0, σ²) (σ: each unit's spread on the anchors)"),
        Transform("latent_isotropic", "latent", "isotropic_scaling", "z ↦ αz, α = e^U(-ln 4, ln 4)"),
        Transform("latent_diagonal", "latent", "diagonal_scaling", "z ↦ DPz, D positive non-isotropic"),
        Transform("latent_rotation", "latent", "rotation", "z ↦ Qz, Q random orthogonal"),
        Transform("latent_shift", "latent", "shift", "z ↦ z + h, h ~ N(0, 4σ²) per dimension"),
        Transform("latent_affine", "latent", "affine", "z ↦ Mz + h, M = Q₁ diag(e^U(-ln 4, ln 4)) Q₂"),
    )
}


def in_group(activation: str, transform: str) -> bool | None:
    """Whether a pre-activation `transform` belongs to `activation`'s intertwiner group (`None` for latent maps)."""
    spec = TRANSFORMS[transform]
    if spec.level == "latent":
        return None
    return spec.kind == "group" or spec.kind in INTERTWINER_GROUPS[activation]


def expected_invariant(activation: str, normalization: str, transform: str) -> bool:
    """Whether theory says the relative vector is unchanged (pre-activation maps outside the group never are)."""
    spec = TRANSFORMS[transform]
    if spec.level == "pre" and not in_group(activation, transform):
        return False
    kinds = INTERTWINER_GROUPS[activation] if spec.kind == "group" else (spec.kind,)
    return all(kind in NORMALIZATION_INVARIANCES[normalization] for kind in kinds)


# ------------------------------------------------------------------------------------------------- random maps
def _log_uniform(generator: torch.Generator, size: int) -> torch.Tensor:
    return torch.exp((2 * torch.rand(size, generator=generator, dtype=DTYPE) - 1) * math.log(4.0))


def _permutation(generator: torch.Generator, size: int) -> torch.Tensor:
    return torch.eye(size, dtype=DTYPE)[torch.randperm(size, generator=generator)]


def _orthogonal(generator: torch.Generator, size: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r))


def _signs(generator: torch.Generator, size: int) -> torch.Tensor:
    return torch.where(torch.rand(size, generator=generator) < 0.5, -1.0, 1.0).to(DTYPE)


def _draw(activation: str, kind: str, generator: torch.Generator, size: int) -> torch.Tensor:
    """A random matrix of the class `kind` (``"group"``: the activation's whole intertwiner group)."""
    if kind == "group":
        generators = INTERTWINER_GROUPS[activation]
        kind = next((g for g in generators if g != "permutation"), "permutation")
    permutation = _permutation(generator, size)
    if kind == "permutation":
        return permutation
    if kind == "sign_flip":
        return _signs(generator, size)[:, None] * permutation
    if kind == "diagonal_scaling":
        return _log_uniform(generator, size)[:, None] * permutation
    if kind == "isotropic_scaling":
        return _log_uniform(generator, 1) * torch.eye(size, dtype=DTYPE)
    if kind == "rotation":
        return _orthogonal(generator, size)
    if kind == "affine":
        return _orthogonal(generator, size) @ torch.diag(_log_uniform(generator, size)) @ _orthogonal(generator, size)
    return torch.eye(size, dtype=DTYPE)  # "shift": the identity, plus a shift drawn by the caller


@torch.no_grad()
def transformed(model: RelativeMLP, activation: str, transform: str, anchor_x: torch.Tensor, seed: int) -> RelativeMLP:
    """A copy of `model` with `transform` applied (the pre-activation weights or the latent map)."""
    spec = TRANSFORMS[transform]
    generator = torch.Generator().manual_seed(10_007 * seed + sorted(TRANSFORMS).index(transform))
    size = model.last.out_features
    matrix = _draw(activation, spec.kind, generator, size)
    copy = clone(model)
    if spec.level == "pre":
        shift = torch.zeros(size, dtype=DTYPE)
        if spec.kind == "shift":
            shift = model.preactivations(anchor_x).std(0) * torch.randn(size, generator=generator, dtype=DTYPE)
        copy.last.weight.copy_(matrix @ model.last.weight)
        copy.last.bias.copy_(matrix @ model.last.bias + shift)
    else:
        shift = torch.zeros(size, dtype=DTYPE)
        if spec.kind in ("shift", "affine"):
            spread = model.latents(anchor_x).std(0).clamp_min(1e-3)
            shift = 2 * spread * torch.randn(size, generator=generator, dtype=DTYPE)
        copy.latent_map = (matrix, shift)
    return copy


__all__ = [
    "INTERTWINER_GROUPS",
    "NORMALIZATION_INVARIANCES",
    "TRANSFORMS",
    "Transform",
    "expected_invariant",
    "in_group",
    "transformed",
]
