r"""Topological densification (Hofer et al., ICML 2020): the loss on the death times of class-pure groups of a batch.

.. math::

    R = \sum_{c} \sum_{D \in \mathcal{G}_c} \sum_{w \in \dagger(D)} |w - \beta|,

with :math:`\dagger(D)` the 0-dimensional persistence death times of a group (:func:`hf_relrep.topology.death_times`).
:func:`densification` computes it for several spaces of one batch in one spanning-tree computation, through the
backend dispatch of :mod:`hf_relrep.topology.dispatch` (on CPU, one autograd node for all of them); with ``samples_per_class`` on an accelerator, the class groups are built on the device
with static shapes and nothing waits for it.

Example:
    >>> import torch
    >>> from hf_relrep.topology.densification import densification_loss
    >>> densification_loss(torch.tensor([[0.0], [1.0], [3.0], [10.0]]), torch.tensor([0, 0, 0, 1]), beta=1.5)
    tensor(1.)
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import torch

from ..checks import ensure
from ..errors import ConfigurationError, TopologyError
from .backends.base import PersistenceBackend
from .dispatch import AUTO, deviation_losses, persistence_backend
from .grouping import class_groups


@dataclass(frozen=True)
class Densification:
    """The densification loss of one space and what a trainer logs about it, all tensors (no host synchronisation).

    Attributes:
        loss: the scalar :math:`R = \\sum_{\\text{groups}} \\sum_{w} |w - \\beta|`, with gradient.
        num_groups: how many groups :math:`R` sums over (divide for the mean per group): a float, or a 0-dim tensor
            when the groups were built on the device.
        death_times: ``[G, k]`` detached death times of each group (in edge order, not sorted); ``NaN`` pads rows
            that are not groups and the ends of groups smaller than ``k + 1``.
        classes: ``[G]`` class of each row (``-1`` on padding).
    """

    loss: torch.Tensor
    num_groups: torch.Tensor | float
    death_times: torch.Tensor
    classes: torch.Tensor

    def median_death_time(self) -> torch.Tensor:
        """Median of the death times over all groups (0-dim; NaN if there is no group)."""
        return self.death_times.nanmedian()

    def by_class(self) -> dict[int, torch.Tensor]:
        """``{class: 1-D death times of its groups, in group order}``, sorted by class (reads classes on the host)."""
        parts: dict[int, list[torch.Tensor]] = {}
        for label, row in zip(self.classes.tolist(), self.death_times, strict=True):
            if label >= 0:
                parts.setdefault(int(label), []).append(row[~row.isnan()].sort().values)
        return {label: torch.cat(parts[label]) for label in sorted(parts)}


def densification(
    spaces: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    betas: Sequence[float],
    samples_per_class: int | None = None,
    backend: str = AUTO,
) -> list[Densification]:
    """:func:`densification_loss` of several spaces of one batch (e.g. latents and relative vectors) in one call.

    The class groups are built once; the spanning trees of all spaces are found in one computation (the same group
    size ``n`` in every space; any dimension). With ``samples_per_class`` on an accelerator nothing waits for the
    device: the groups are built there, and the checks (non-finite latents, no class with a full group) are raised
    by a later call (see :mod:`hf_relrep.checks`).

    Args:
        spaces: ``[batch, d_s]`` tensors, one per space, with gradient.
        labels: ``[batch]`` integer class of each sample.
        betas: target death time per space.
        samples_per_class: see :func:`densification_loss`.
        backend: see :func:`densification_loss`.

    Returns:
        One :class:`Densification` per space.

    Raises:
        The errors of :func:`densification_loss`.
    """
    return _densification(spaces, labels, betas, samples_per_class, persistence_backend(backend))


def _densification(
    spaces: Sequence[torch.Tensor],
    labels: torch.Tensor,
    betas: Sequence[float],
    samples_per_class: int | None,
    backend: PersistenceBackend,
) -> list[Densification]:
    """:func:`densification` with the backend looked up (so that a deprecated name warns at the user's call)."""
    spaces = list(spaces)
    betas = [_check_beta(beta) for beta in betas]
    if len(betas) != len(spaces) or not spaces:
        raise ConfigurationError(f"densification needs one beta per space, got {len(betas)} for {len(spaces)}.")
    for latents in spaces:
        _check_latents_and_labels(latents, labels, samples_per_class)
    groups = class_groups(labels, samples_per_class)
    need = 2 if samples_per_class is None else samples_per_class
    no_group = lambda: TopologyError(  # noqa: E731
        f"densification_loss needs at least one class with {need} samples in the batch, got class counts "
        f"{_counts(labels)}; build class-pure batches of b classes x n samples each (e.g. TopoTrainer's "
        "class-balanced sampler)."
    )
    if not groups or groups[0].index.shape[0] == 0:
        raise no_group()
    if groups[0].valid is not None:
        ensure(groups[0].valid.any(), no_group)
    results: list[list] = [[] for _ in spaces]
    for group in groups:
        rows, n = group.index.shape
        if group.consecutive:
            # (no slice when the groups fill the batch: its backward would allocate and copy a full gradient)
            clouds = [
                (space if space.shape[0] == rows * n else space[: rows * n]).reshape(rows, n, -1) for space in spaces
            ]
        else:
            clouds = [space.index_select(0, group.index.view(-1)).view(rows, n, -1) for space in spaces]
        clouds = [x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in clouds]
        losses, deaths = deviation_losses(clouds, betas, group.valid, backend=backend)
        if group.valid is None:
            count = float(rows)
        else:
            count = group.valid.sum().to(deaths[0].dtype)
            deaths = [torch.where(group.valid.unsqueeze(1), d, float("nan")) for d in deaths]
        for s in range(len(spaces)):
            results[s].append(Densification(losses[s], count, deaths[s], group.classes))
    return [parts[0] if len(parts) == 1 else _merge(parts) for parts in results]


def _merge(parts: list[Densification]) -> Densification:
    """One :class:`Densification` from those of several group sizes (death times NaN-padded to the widest)."""
    width = max(part.death_times.shape[1] for part in parts)
    return Densification(
        loss=sum(part.loss for part in parts),
        num_groups=sum(part.num_groups for part in parts),
        death_times=torch.cat(
            [
                torch.nn.functional.pad(p.death_times, (0, width - p.death_times.shape[1]), value=math.nan)
                for p in parts
            ]
        ),
        classes=torch.cat([part.classes for part in parts]),
    )


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not beta >= 0.0 or beta == float("inf"):
        raise ConfigurationError(f"beta must be a finite number >= 0 (a target MST edge length), got {beta!r}.")
    return beta


def _check_latents_and_labels(latents: torch.Tensor, labels: torch.Tensor, samples_per_class: int | None) -> None:
    if not isinstance(latents, torch.Tensor) or latents.ndim != 2:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise TopologyError(f"latents must be a [batch, dim] tensor, got {shape}; pool token states first.")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != latents.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TopologyError(
            f"labels must be a [batch] tensor matching latents {tuple(latents.shape)}, got {shape}; pass one class "
            "index per latent."
        )
    if labels.is_floating_point() or labels.is_complex():
        raise TopologyError(f"labels must be integer class indices, got dtype {labels.dtype}; use labels.long().")
    if samples_per_class is not None and (
        not isinstance(samples_per_class, int) or isinstance(samples_per_class, bool) or samples_per_class < 2
    ):
        raise ConfigurationError(
            f"samples_per_class must be an integer >= 2 (a group of one has no death time) or None, got "
            f"{samples_per_class!r}."
        )


def _counts(labels: torch.Tensor) -> dict[int, int]:
    values, counts = torch.unique(labels.detach().cpu(), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


@overload
def densification_loss(
    latents: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    samples_per_class: int | None = None,
    return_death_times: Literal[False] = False,
    backend: str = AUTO,
) -> torch.Tensor: ...


@overload
def densification_loss(
    latents: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    samples_per_class: int | None = None,
    return_death_times: Literal[True],
    backend: str = AUTO,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]: ...


def densification_loss(
    latents: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    samples_per_class: int | None = None,
    return_death_times: bool = False,
    backend: str = AUTO,
) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
    r"""Topological densification loss of Hofer et al. (ICML 2020) on the class-pure groups of a batch.

    .. math::

        R = \sum_{c} \sum_{D \in \mathcal{G}_c} \sum_{w \in \dagger(D)} |w - \beta|,

    where :math:`\mathcal{G}_c` are the class-pure groups of class :math:`c` in the batch and :math:`\dagger(D)` the
    0-dimensional Vietoris–Rips death times of a group (its minimum-spanning-tree edge lengths, see
    :func:`death_times`). It pulls the MST edges of each class towards length :math:`\beta`: read :math:`\beta`
    against the scale of the space (log the median death time); a :math:`\beta` above the typical edge spreads the
    classes instead of densifying them.

    Groups with fewer than 2 samples contribute nothing (they have no finite death time). Groups of equal size are
    computed in one batched call, so a class-balanced batch (every class with the same count) costs one call. Several
    spaces of one batch: :func:`densification`.

    Args:
        latents: ``[batch, dim]`` latents (or relative vectors), with gradient.
        labels: ``[batch]`` integer class of each latent.
        beta: target death time :math:`\beta \ge 0` (Hofer's default for images: 0.7; the paper: 3).
        samples_per_class: ``None`` (default): one group per class with all its samples in the batch. An integer
            ``n >= 2``: each class is cut, in batch order, into consecutive groups of exactly ``n`` samples, as in
            Hofer's batches of ``n`` per class; death times shrink as groups grow, so this keeps :math:`\beta`'s
            meaning fixed when a batch holds several groups of a class. The samples left over (fewer than ``n``) are
            left out of the loss.
        return_death_times: also return the death times, detached, per class (this reads the classes on the host).
        backend: which persistence backend computes the spanning trees, as for :func:`death_times` (``"auto"``:
            on CPU, Prim on the host with the loss fused into its autograd node, for groups of up to 512).

    Returns:
        The scalar loss :math:`R` (a sum, not a mean: it grows with the number of groups and their size). With
        ``return_death_times=True``, the pair ``(R, {class: deaths})`` where ``deaths`` is the 1-D concatenation of the
        death times of that class's groups; classes without a group of 2 are absent.

    Raises:
        TopologyError: no class has a group of 2 samples in this batch (the loss would be silently 0), or the shapes of
            ``latents``/``labels`` are wrong.
        NonFiniteError: ``latents`` contains NaN or infinite values.
        ConfigurationError: ``beta`` is negative or not finite, ``samples_per_class`` is below 2, or ``backend`` is
            unknown or cannot run here.
    """
    (result,) = _densification([latents], labels, [beta], samples_per_class, persistence_backend(backend))
    return (result.loss, result.by_class()) if return_death_times else result.loss


@torch.no_grad()
def death_times_by_class(
    latents: torch.Tensor, labels: torch.Tensor, *, samples_per_class: int | None = None
) -> dict[int, torch.Tensor]:
    """Death times of each class's groups, without gradient: what the histograms plot and a trainer logs.

    Same groups as :func:`densification_loss`: one group per class, or consecutive groups of ``samples_per_class``.
    Unlike the loss, a batch with no class of 2 samples is not an error here: the result is simply empty.

    Args:
        latents: ``[batch, dim]`` latents.
        labels: ``[batch]`` integer class of each latent.
        samples_per_class: see :func:`densification_loss`.

    Returns:
        ``{class: deaths}`` sorted by class, ``deaths`` the 1-D concatenation of the death times (MST edge lengths)
        of that class's groups; classes without a group of 2 samples are absent.

    Example:
        >>> latents = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [100.0]])
        >>> death_times_by_class(latents, torch.tensor([0, 0, 0, 1, 1, 2]))
        {0: tensor([1., 2.]), 1: tensor([0.5000])}
    """
    _check_latents_and_labels(latents, labels, samples_per_class)
    groups = class_groups(labels, samples_per_class, on_device=False)
    if not groups:
        return {}
    (result,) = _densification([latents], labels, [0.0], samples_per_class, persistence_backend(AUTO))
    return result.by_class()
