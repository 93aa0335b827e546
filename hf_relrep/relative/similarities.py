"""Similarity functions of relative representations, by name, and their product.

A relative representation describes a latent z by its similarities to k anchors, after a normalization N
(`hf_relrep.relative.projection`). Each similarity gives the representation a different invariance (Cannistraci et al.,
"From Bricks to Bridges: Product of Invariances to Enhance Latent Space Communication", ICLR 2024):

- ``"cosine"``: ``cos(N(z), N(a_i))``; with N the identity, invariant to rotations and isotropic scaling.
- ``"euclidean"``: ``−‖N(z) − N(a_i)‖₂``; with N the identity, invariant to rotations, reflections and shifts.
- ``"l1"``: ``−‖N(z) − N(a_i)‖₁``; with N the identity, invariant to permutations, sign flips and shifts.
- ``"linf"``: ``−‖N(z) − N(a_i)‖_∞``; the same invariances as ``"l1"``.

Under ``"robust"`` or ``"whiten"`` every similarity inherits the normalization's invariances too (N removes scale,
shift and, for whitening, every invertible linear map).

Several similarities combine into a product space: each part's ``[batch, k]`` vector is standardized per row
(``(r − mean(r)) / rms(r − mean(r))``, a LayerNorm without learned parameters, so that parts measured in different
units weigh alike and no batch statistic is involved) and the parts are concatenated: ``[batch, k · parts]``.

Registry: `SIMILARITIES` (name → function); adding one is one function decorated with `register_similarity`.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigurationError
from ..utils.registry import Registry


Similarity = Callable[..., torch.Tensor]
SIMILARITIES: Registry[Similarity] = Registry("similarity")


def register_similarity(name: str) -> Callable[[Similarity], Similarity]:
    """A decorator that adds a similarity to `SIMILARITIES` under `name`.

    The function receives ``(latents [n, d], anchors [k, d], *, eps, normalized)`` — both already normalized by N;
    `normalized` tells whether N was the identity — and returns ``[n, k]`` similarities (larger = closer).

    Raises:
        ConfigurationError: `name` is taken.
    """
    return SIMILARITIES.register(name)


def unit_rows(x: torch.Tensor, eps: float, *, rescale_small: bool = True) -> torch.Tensor:
    """``x / ‖x‖`` per row, scale-safe: each row is first divided by its largest magnitude, so no square overflows
    (1e30) or underflows (1e-30). A zero row stays zero.

    Args:
        x: ``[n, d]`` in a floating dtype.
        eps: floor of the norm, ``x / max(‖x‖, eps)`` (after the rescaling).
        rescale_small: also scale rows up whose largest magnitude is below 1 (every scale then gives the same
            direction); with False, only large rows are scaled down and small rows keep the `eps` floor (used on
            normalized latents, whose unit is σ_B: a row far below `eps` there is rounding noise around μ_B).
    """
    scale = x.detach().abs().amax(dim=-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    if not rescale_small:
        scale = scale.clamp(min=1.0)
    return F.normalize(x / scale, dim=-1, eps=eps)


@register_similarity("cosine")
def cosine(latents: torch.Tensor, anchors: torch.Tensor, *, eps: float, normalized: bool) -> torch.Tensor:
    """``cos(z, a_i) = ⟨z, a_i⟩ / (‖z‖ ‖a_i‖)``, rows normalized by the scale-safe `unit_rows`."""
    return (
        unit_rows(latents, eps, rescale_small=not normalized) @ unit_rows(anchors, eps, rescale_small=not normalized).T
    )


@register_similarity("euclidean")
def negative_euclidean(latents: torch.Tensor, anchors: torch.Tensor, *, eps: float, normalized: bool) -> torch.Tensor:
    """``−‖z − a_i‖₂``."""
    return -torch.cdist(latents, anchors, p=2.0)


@register_similarity("l1")
def negative_l1(latents: torch.Tensor, anchors: torch.Tensor, *, eps: float, normalized: bool) -> torch.Tensor:
    """``−Σ_j |z_j − a_ij|``."""
    return -torch.cdist(latents, anchors, p=1.0)


@register_similarity("linf")
def negative_linf(latents: torch.Tensor, anchors: torch.Tensor, *, eps: float, normalized: bool) -> torch.Tensor:
    """``−max_j |z_j − a_ij|``."""
    return -torch.cdist(latents, anchors, p=float("inf"))


def similarity_parts(similarity: str | Sequence[str]) -> tuple[str, ...]:
    """The similarity names of a setting: one name, or a sequence of distinct names (a product space).

    Raises:
        ConfigurationError: an unknown name, an empty sequence or a repeated name.
    """
    parts = (similarity,) if isinstance(similarity, str) else tuple(similarity)
    if not parts:
        raise ConfigurationError(f"similarity needs at least one name; choose among {SIMILARITIES.choices()}.")
    unknown = [part for part in parts if part not in SIMILARITIES]
    if unknown:
        raise ConfigurationError(
            f"Unknown similarity {unknown[0]!r}; choose one of {SIMILARITIES.choices()}, or a tuple of them."
        )
    if len(set(parts)) != len(parts):
        raise ConfigurationError(f"similarity {parts} repeats a name; each part of a product space appears once.")
    return parts


def standardize_rows(relative: torch.Tensor, eps: float) -> torch.Tensor:
    """``(r − mean(r)) / max(rms(r − mean(r)), eps)`` per row: a LayerNorm without learned parameters."""
    centred = relative - relative.mean(dim=-1, keepdim=True)
    return centred / centred.square().mean(dim=-1, keepdim=True).sqrt().clamp(min=eps)


def relative_vectors(
    latents: torch.Tensor,
    anchors: torch.Tensor,
    similarity: str | Sequence[str] = "cosine",
    *,
    eps: float = 1e-5,
    normalized: bool = False,
) -> torch.Tensor:
    """Similarities of normalized latents to normalized anchors: one part, or the product of several.

    One similarity s gives ``[n, k]``: ``s(z, a_i)``. A sequence ``(s_1, …, s_m)`` gives ``[n, k·m]``: the
    concatenation of each part standardized per row (`standardize_rows`), in the given order.

    Args:
        latents: ``[n, d]``, already normalized.
        anchors: ``[k, d]``, normalized alike.
        similarity: a name in `SIMILARITIES` or a sequence of names.
        eps: floor of norms and of each part's standard deviation.
        normalized: whether a normalization other than the identity ran first (see `cosine`).
    """
    parts = similarity_parts(similarity)
    if len(parts) == 1:
        return SIMILARITIES[parts[0]](latents, anchors, eps=eps, normalized=normalized)
    return torch.cat(
        [standardize_rows(SIMILARITIES[p](latents, anchors, eps=eps, normalized=normalized), eps) for p in parts],
        dim=-1,
    )


__all__ = [
    "SIMILARITIES",
    "register_similarity",
    "relative_vectors",
    "similarity_parts",
    "standardize_rows",
    "unit_rows",
]
