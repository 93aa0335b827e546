r"""Topological densification: 0-dimensional persistence of class-pure groups of latents, and the loss built on it.

For a finite point cloud :math:`D = \{x_1, \dots, x_n\} \subset \mathbb{R}^d`, the Vietoris–Rips filtration adds the
edge :math:`\{x_i, x_j\}` at time :math:`\lVert x_i - x_j \rVert_2`. All :math:`n` connected components are born at
time 0 and :math:`n - 1` of them die when an edge first joins two components, which is exactly Kruskal's algorithm:
the death times :math:`\dagger(D)` are the :math:`n - 1` edge lengths of a Euclidean minimum spanning tree of
:math:`D` (Hofer, Graf, Rieck, Niethammer, Kwitt, "Topologically Densified Distributions", ICML 2020). The multiset of
MST edge lengths is unique even when the tree is not.

Gradients: the tree is chosen on detached distances, exactly, for all groups and spaces together (small CPU clouds:
Prim on the host, :mod:`hf_relrep.host_spanning_tree`; otherwise about :math:`\log_2 n` batched rounds,
:mod:`hf_relrep.spanning_tree`); the death times are then the differentiable lengths
:math:`\lVert x_u - x_v \rVert_2` of the chosen edges :math:`(u, v)`, so
:math:`\partial w / \partial x_u = (x_u - x_v) / w` and the gradient is 0 for a zero-length edge (duplicate points).

Nothing here waits for an accelerator: on CUDA, the finiteness checks are deferred (:mod:`hf_relrep.checks`) and, with
``samples_per_class``, the class groups are built on the device with static shapes.

Example:
    >>> import torch
    >>> from hf_relrep.topology import death_times, densification_loss
    >>> death_times(torch.tensor([[0.0], [1.0], [3.0]]))
    tensor([1., 2.])
    >>> densification_loss(torch.tensor([[0.0], [1.0], [3.0], [10.0]]), torch.tensor([0, 0, 0, 1]), beta=1.5)
    tensor(1.)
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch

from .checks import ensure
from .errors import ConfigurationError, NonFiniteError, TopologyError
from .grouping import class_groups
from .host_spanning_tree import NON_FINITE_MESSAGE, host_deviation_losses, host_tree_lengths, on_host
from .spanning_tree import MAX_POINTS, edge_lengths, minimum_spanning_edges


BACKENDS = ("torch", "gudhi")


def death_times(
    points: torch.Tensor | Sequence[torch.Tensor], *, backend: str = "torch"
) -> torch.Tensor | list[torch.Tensor]:
    r"""0-dimensional Vietoris–Rips persistence death times of one or several point clouds, differentiable.

    .. math::

        \dagger(D) = \{\lVert x_u - x_v \rVert_2 : (u, v) \in \mathrm{MST}(D)\}, \quad |\dagger(D)| = n - 1,

    the edge lengths of a Euclidean minimum spanning tree of :math:`D` (Hofer et al., ICML 2020). The tree is chosen
    without gradient; gradients flow through the lengths of the chosen edges only, and are 0 (not NaN) on the
    zero-length edges between duplicate points.

    Args:
        points: ``[n, d]`` one point cloud, or ``[groups, n, d]`` several clouds of the same size; or a list of such
            tensors (e.g. the latents and the relative vectors of one batch, any ``d`` each), computed together: one
            spanning-tree computation for all tensors with the same ``n``. Half-precision inputs are computed (and
            returned) in float32.
        backend: ``"torch"`` (default): exact spanning trees of all clouds at once on whatever device ``points`` is
            on: on CPU, clouds of up to 512 points take Prim's algorithm on the host and one autograd node
            (:mod:`hf_relrep.host_spanning_tree`); elsewhere, batched rounds without host synchronisation
            (:mod:`hf_relrep.spanning_tree`).
            ``"gudhi"``: the death edges of gudhi's Rips persistence pairs (``flag_persistence_generators``), computed
            on CPU in float64 one cloud at a time: a reference, with the same values and gradients.

    Returns:
        ``[n - 1]`` or ``[groups, n - 1]`` death times, sorted ascending within each cloud; a list of those for a list.

    Raises:
        TopologyError: a tensor is not floating point of shape ``[n, d]`` or ``[groups, n, d]`` with
            ``2 <= n <= 2048`` (the gudhi backend has no upper bound).
        NonFiniteError: ``points`` contains NaN or infinite values (on CUDA: raised by a later call, see
            :mod:`hf_relrep.checks`).
        ConfigurationError: unknown ``backend``.

    Note:
        Higher-order gradients (``create_graph=True``) treat the tree as fixed, like the first-order ones: they are
        those of the chosen edges' lengths.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"Unknown persistence backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    several = isinstance(points, (list, tuple))
    tensors = list(points) if several else [points]
    if not tensors:
        raise TopologyError("death_times got an empty list of point tensors; pass at least one [n, d] tensor.")
    clouds = []
    for tensor in tensors:
        _check_points(tensor, backend)
        x = tensor if tensor.ndim == 3 else tensor.unsqueeze(0)
        clouds.append(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
    deaths = _death_times(clouds, backend=backend)
    deaths = [d if t.ndim == 3 else d.squeeze(0) for d, t in zip(deaths, tensors, strict=True)]
    return deaths if several else deaths[0]


def _check_points(points: torch.Tensor, backend: str) -> None:
    """Shape and dtype checks; finiteness is checked on the squared norms the spanning tree computes anyway."""
    if not isinstance(points, torch.Tensor) or not points.is_floating_point():
        raise TopologyError(
            f"death_times needs a floating-point torch.Tensor of points, got {type(points).__name__}"
            f"{'' if not isinstance(points, torch.Tensor) else ' of dtype ' + str(points.dtype)}; "
            "convert with torch.as_tensor(points, dtype=torch.float32)."
        )
    if points.ndim not in (2, 3):
        raise TopologyError(
            f"death_times needs points of shape [n, d] or [groups, n, d], got shape {tuple(points.shape)}; "
            "flatten each sample's latent to one vector first."
        )
    if points.shape[-2] < 2:
        raise TopologyError(
            f"death_times needs at least 2 points per cloud (a single point has no finite death time), got "
            f"shape {tuple(points.shape)}; put n >= 2 samples of a class in each group."
        )
    if backend == "torch" and points.shape[-2] > MAX_POINTS:
        raise TopologyError(
            f"death_times computes clouds of at most {MAX_POINTS} points, got {points.shape[-2]}; split the cloud "
            "into groups (samples_per_class) or use backend='gudhi'."
        )


def _non_finite() -> NonFiniteError:
    return NonFiniteError(NON_FINITE_MESSAGE)


def _death_times(clouds: list[torch.Tensor], *, backend: str) -> list[torch.Tensor]:
    """Sorted differentiable death times of each ``[G_s, n_s, d_s]`` tensor."""
    if backend == "gudhi":
        return edge_lengths(clouds, [_mst_edges_gudhi(x) for x in clouds])
    return _tree_lengths(clouds, sort=True)


def _tree_lengths(clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
    """Differentiable spanning-tree edge lengths of each tensor of clouds: one computation per (n, device), on the
    host for small CPU clouds, by batched rounds otherwise; finiteness checked (deferred on accelerators)."""
    lengths: list = [None] * len(clouds)
    buckets: dict[tuple[int, torch.device], list[int]] = {}
    for s, x in enumerate(clouds):
        buckets.setdefault((x.shape[1], x.device), []).append(s)
    for (n, device), members in buckets.items():
        bucket = [clouds[s] for s in members]
        if on_host(n, device):
            found = host_tree_lengths(bucket, sort=sort)
        else:
            edges, sq_norms = minimum_spanning_edges(bucket)
            norms = torch.cat([t.reshape(-1) for t in sq_norms]) if len(sq_norms) > 1 else sq_norms[0]
            limit = min(torch.finfo(t.dtype).max for t in sq_norms) / 4  # d² <= 4 max |x - x_0|²
            ensure(norms.amax() <= limit, _non_finite)  # False for NaN too
            found = edge_lengths(bucket, edges, sort=sort)
        for s, w in zip(members, found, strict=True):
            lengths[s] = w
    return lengths


def _mst_edges_gudhi(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Death edges of gudhi's 0-dimensional Rips persistence pairs, one group at a time, as ``(u, v) [G, n-1]``."""
    import gudhi

    groups, n, _ = x.shape
    x64 = x.detach().to("cpu", torch.float64)
    distances = torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    if not np.isfinite(distances).all():
        raise _non_finite()
    edges = []
    for g in range(groups):
        tree = gudhi.RipsComplex(distance_matrix=distances[g]).create_simplex_tree(max_dimension=1)
        tree.compute_persistence(min_persistence=-1.0)  # keep zero-length deaths (duplicate points)
        pairs = tree.flag_persistence_generators()[0]  # rows: birth vertex, death edge (u, v)
        if pairs.shape[0] != n - 1:  # pragma: no cover - would be a gudhi bug
            raise TopologyError(f"gudhi returned {pairs.shape[0]} finite 0-dimensional pairs for {n} points.")
        edges.append(torch.as_tensor(pairs[:, 1:3], dtype=torch.long))
    uv = torch.stack(edges).to(x.device)
    return uv[..., 0], uv[..., 1]


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

    Returns:
        One :class:`Densification` per space.

    Raises:
        The errors of :func:`densification_loss`.
    """
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
        losses, deaths = _deviation_losses(clouds, betas, group.valid)
        if group.valid is None:
            count = float(rows)
        else:
            count = group.valid.sum().to(deaths[0].dtype)
            deaths = [torch.where(group.valid.unsqueeze(1), d, float("nan")) for d in deaths]
        for s in range(len(spaces)):
            results[s].append(Densification(losses[s], count, deaths[s], group.classes))
    return [parts[0] if len(parts) == 1 else _merge(parts) for parts in results]


def _deviation_losses(
    clouds: list[torch.Tensor], betas: list[float], valid: torch.Tensor | None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""Per tensor of clouds (one ``n`` for all), :math:`\sum_{g, k} |w_{gk} - \beta|` over the spanning-tree edge
    lengths of the rows that count (``valid``; all if ``None``), with gradient :math:`\operatorname{sign}(w - \beta)`
    (0 at :math:`w = \beta` and on rows that do not count); and the detached lengths, in edge order."""
    if all(on_host(x.shape[1], x.device) for x in clouds):
        return host_deviation_losses(clouds, betas, valid)
    lengths = _tree_lengths(clouds, sort=False)
    losses = []
    for w, beta in zip(lengths, betas, strict=True):
        deviation = (w - beta).abs()
        losses.append((deviation if valid is None else deviation * valid.unsqueeze(1)).sum())
    return losses, [w.detach() for w in lengths]


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
) -> torch.Tensor: ...


@overload
def densification_loss(
    latents: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    samples_per_class: int | None = None,
    return_death_times: Literal[True],
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]: ...


def densification_loss(
    latents: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    samples_per_class: int | None = None,
    return_death_times: bool = False,
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

    Returns:
        The scalar loss :math:`R` (a sum, not a mean: it grows with the number of groups and their size). With
        ``return_death_times=True``, the pair ``(R, {class: deaths})`` where ``deaths`` is the 1-D concatenation of the
        death times of that class's groups; classes without a group of 2 are absent.

    Raises:
        TopologyError: no class has a group of 2 samples in this batch (the loss would be silently 0), or the shapes of
            ``latents``/``labels`` are wrong.
        NonFiniteError: ``latents`` contains NaN or infinite values.
        ConfigurationError: ``beta`` is negative or not finite, or ``samples_per_class`` is below 2.
    """
    (result,) = densification([latents], labels, betas=[beta], samples_per_class=samples_per_class)
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
    (result,) = densification([latents], labels, betas=[0.0], samples_per_class=samples_per_class)
    return result.by_class()
