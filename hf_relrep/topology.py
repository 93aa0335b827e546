r"""Topological densification: 0-dimensional persistence of class-pure groups of latents, and the loss built on it.

For a finite point cloud :math:`D = \{x_1, \dots, x_n\} \subset \mathbb{R}^d`, the Vietoris–Rips filtration adds the
edge :math:`\{x_i, x_j\}` at time :math:`\lVert x_i - x_j \rVert_2`. All :math:`n` connected components are born at
time 0 and :math:`n - 1` of them die when an edge first joins two components, which is exactly Kruskal's algorithm:
the death times :math:`\dagger(D)` are the :math:`n - 1` edge lengths of a Euclidean minimum spanning tree of
:math:`D` (Hofer, Graf, Rieck, Niethammer, Kwitt, "Topologically Densified Distributions", ICML 2020). The multiset of
MST edge lengths is unique even when the tree is not.

Gradients: the tree is chosen on detached distances; the death times are then the differentiable lengths
:math:`\lVert x_u - x_v \rVert_2` of the chosen edges :math:`(u, v)`, so
:math:`\partial w / \partial x_u = (x_u - x_v) / w` and the gradient is 0 for a zero-length edge (duplicate points).

Example:
    >>> import torch
    >>> from hf_relrep.topology import death_times, densification_loss
    >>> death_times(torch.tensor([[0.0], [1.0], [3.0]]))
    tensor([1., 2.])
    >>> densification_loss(torch.tensor([[0.0], [1.0], [3.0], [10.0]]), torch.tensor([0, 0, 0, 1]), beta=1.5)
    tensor(1.)
"""

from typing import Literal, overload

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .errors import ConfigurationError, NonFiniteError, TopologyError


BACKENDS = ("torch", "gudhi")


def death_times(points: torch.Tensor, *, backend: str = "torch") -> torch.Tensor:
    r"""0-dimensional Vietoris–Rips persistence death times of one or several point clouds, differentiable.

    .. math::

        \dagger(D) = \{\lVert x_u - x_v \rVert_2 : (u, v) \in \mathrm{MST}(D)\}, \quad |\dagger(D)| = n - 1,

    the edge lengths of a Euclidean minimum spanning tree of :math:`D` (Hofer et al., ICML 2020). The tree is chosen
    without gradient; gradients flow through the lengths of the chosen edges only, and are 0 (not NaN) on the
    zero-length edges between duplicate points.

    Args:
        points: ``[n, d]`` one point cloud, or ``[groups, n, d]`` several clouds of the same size, computed together.
            Half-precision inputs are computed (and returned) in float32.
        backend: ``"torch"`` (default): Prim's algorithm run on all groups at once with batched tensor ops (one
            distance computation, ``n - 1`` steps of four kernels each, then the chosen edges' lengths), on whatever
            device ``points`` is on. ``"gudhi"``: the death edges of gudhi's Rips persistence pairs
            (``flag_persistence_generators``), computed on CPU in float64 one group at a time: a reference, with the
            same values and gradients.

    Returns:
        ``[n - 1]`` or ``[groups, n - 1]`` death times, sorted ascending within each group.

    Raises:
        TopologyError: ``points`` is not a floating tensor of shape ``[n, d]`` or ``[groups, n, d]`` with ``n >= 2``.
        NonFiniteError: ``points`` contains NaN or infinite values.
        ConfigurationError: unknown ``backend``.

    Note:
        Only first-order gradients are implemented (no double backward).
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"Unknown persistence backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    _check_points(points)
    batched = points.ndim == 3
    x = points if batched else points.unsqueeze(0)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    u, v = _mst_edges_torch(x) if backend == "torch" else _mst_edges_gudhi(x)
    deaths = _sorted_edge_lengths(x, u, v)
    return deaths if batched else deaths.squeeze(0)


def _check_points(points: torch.Tensor) -> None:
    """Shape and dtype checks; finiteness is checked by the backends on values they compute anyway (a full
    ``isfinite(points).all()`` pass costs several kernels, more than the whole Prim step for small groups)."""
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


# Prim's stamps: the column of the vertex joining at step k is set to _STAMP + k * _STAMP_STEP in every row. Both are
# powers of two, so the stamps are exact in float32 (for n <= 2**20) and float64, and larger than every squared distance
# once the points are scaled to squared norms <= 1 (only done when they exceed _SQ_NORM_LIMIT).
_STAMP = 2.0**100
_STAMP_STEP = 2.0**80
_SQ_NORM_LIMIT = 2.0**96


@torch.no_grad()
def _mst_edges_torch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges ``(u[g, k], v[g, k])`` of a minimum spanning tree of each group of ``x [G, n, d]``, by batched Prim.

    Prim runs on squared distances (same tree, no sqrt) from one batched Gram product of the centered groups, for all
    groups at once. At this
    scale the cost is the number of tensor ops per step, not their size, so a step is four kernels writing into
    preallocated buffers: ``work[g, :n]`` holds the squared distances and ``work[g, n]`` the squared distance from the
    tree to each vertex (``best``). The vertex joining at step ``k`` gets its column set, in every row at once, to a
    stamp ``_STAMP + k * _STAMP_STEP`` larger than any distance: it is never chosen again nor lowered again, and the
    stamps left in ``best`` record the joining order. Vertex 0 is the root. Afterwards each vertex ``v`` gets the edge
    to its nearest vertex among those that joined before it, the edge Prim used to add it: ``v = 1..n-1`` and
    ``u = parent[v]``.
    """
    groups, n, _ = x.shape
    # Centered: the Gram form loses about eps * |x|^2 to cancellation, so it must not depend on the offset of the group.
    x = x.detach()
    x = x - x.mean(1, keepdim=True)
    gram = torch.bmm(x, x.transpose(1, 2))
    sq_norms = gram.diagonal(dim1=1, dim2=2)
    largest = sq_norms.amax()  # NaN if any point has a NaN
    if not largest <= _SQ_NORM_LIMIT:
        if not torch.isfinite(largest):  # NaN or inf anywhere in x reaches the squared norms
            _raise_non_finite()
        x = x / largest.sqrt()  # same tree; keeps the squared distances below the stamps
        gram = torch.bmm(x, x.transpose(1, 2))
        sq_norms = gram.diagonal(dim1=1, dim2=2)
    sq = torch.add(sq_norms.unsqueeze(2) + sq_norms.unsqueeze(1), gram, alpha=-2.0)
    work = torch.empty(groups, n + 1, n, dtype=sq.dtype, device=x.device)
    work[:, :n] = sq
    best = work[:, n]
    best.copy_(sq[:, 0])
    work[:, :, 0] = _STAMP  # the root joins at step 0
    joined = torch.empty(groups, 1, dtype=torch.long, device=x.device)
    column = joined.unsqueeze(2).expand(groups, n + 1, 1)  # views of `joined`: they follow its in-place updates
    row_index = joined.unsqueeze(2).expand(groups, 1, n)
    row = torch.empty(groups, 1, n, dtype=sq.dtype, device=x.device)
    row_flat = row.view(groups, n)
    for step in range(1, n):
        torch.argmin(best, 1, keepdim=True, out=joined)
        work.scatter_(2, column, _STAMP + step * _STAMP_STEP)
        torch.gather(work, 1, row_index, out=row)
        torch.minimum(best, row_flat, out=best)
    later = best.unsqueeze(2) >= best.unsqueeze(1)  # later[g, i, v]: i did not join before v
    parent = sq.masked_fill_(later, float("inf")).argmin(1)
    return parent[:, 1:], torch.arange(1, n, device=x.device).expand(groups, -1)


def _raise_non_finite() -> None:
    raise NonFiniteError(
        "death_times got NaN or infinite points (or points so large that squared distances overflow); check the "
        "latents (e.g. a diverged model)."
    )


def _mst_edges_gudhi(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Death edges of gudhi's 0-dimensional Rips persistence pairs, one group at a time, as ``(u, v) [G, n-1]``."""
    import gudhi

    groups, n, _ = x.shape
    x64 = x.detach().to("cpu", torch.float64)
    distances = torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    if not np.isfinite(distances).all():
        _raise_non_finite()
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


# Up to this many points per group, the edge differences come from one dense product with the incidence matrix (fewer
# kernels, forward and backward); above it, that product's O(n^2 d) work loses to index_select (measured on CPU).
_INCIDENCE_MAX_POINTS = 32


class _SortedEdgeLengths(torch.autograd.Function):
    """Sorted lengths ``w = ||x[g, v] - x[g, u]||`` of the edges ``u, v [G, k]`` of ``x [G, n, d]``, differentiable.

    Computed from the points, not from a ``|x|^2 + |y|^2 - 2xy`` matrix: exact for close points. The backward is the
    chain rule written out, ``dw/dx_v = (x_v - x_u) / w = -dw/dx_u`` and 0 where ``w = 0`` (duplicate points), in a
    few kernels: for small groups the per-edge factor ``grad / w`` scales the small incidence matrix rather than the
    ``[G, k, d]`` differences, and one batched product returns the gradient. First-order gradients only.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        groups, n, d = x.shape
        if n <= _INCIDENCE_MAX_POINTS:
            incidence = x.new_zeros(groups, u.shape[1], n)  # signed edge-vertex incidence: +1 at v, -1 at u
            incidence.scatter_(2, v.unsqueeze(-1), 1.0).scatter_(2, u.unsqueeze(-1), -1.0)
            difference = torch.bmm(incidence, x)
            flat_u = flat_v = None
        else:
            incidence = None
            offset = (torch.arange(groups, device=x.device) * n).unsqueeze(1)
            flat_u, flat_v = (u + offset).view(-1), (v + offset).view(-1)
            flat = x.reshape(groups * n, d)
            difference = (flat.index_select(0, flat_v) - flat.index_select(0, flat_u)).view(groups, -1, d)
        lengths = torch.linalg.vector_norm(difference, dim=-1)
        values, order = lengths.sort(dim=-1)
        ctx.save_for_backward(difference, lengths, order, incidence, flat_u, flat_v)
        ctx.points_shape = x.shape
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_values: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        difference, lengths, order, incidence, flat_u, flat_v = ctx.saved_tensors
        grad_lengths = torch.empty_like(grad_values).scatter_(1, order, grad_values)
        scale = torch.where(lengths > 0, grad_lengths / lengths, 0.0)  # grad / w, and 0 at w = 0
        if incidence is not None:
            return torch.bmm((incidence * scale.unsqueeze(-1)).transpose(1, 2), difference), None, None
        groups, n, d = ctx.points_shape
        grad_difference = (difference * scale.unsqueeze(-1)).view(-1, d)
        grad_x = difference.new_zeros(groups * n, d)
        grad_x.index_add_(0, flat_v, grad_difference).index_add_(0, flat_u, grad_difference, alpha=-1.0)
        return grad_x.view(groups, n, d), None, None


def _sorted_edge_lengths(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[G, k]`` sorted differentiable lengths of the edges ``u, v [G, k]`` of ``x [G, n, d]`` (see the class)."""
    return _SortedEdgeLengths.apply(x, u, v)


def _class_groups(labels: torch.Tensor, samples_per_class: int | None) -> dict[int, list[list[int]]]:
    """Class-pure groups of batch indices, in batch order: ``{class: [[i, j, ...], ...]}``; groups of < 2 are left out."""
    order: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        order.setdefault(int(label), []).append(index)
    groups: dict[int, list[list[int]]] = {}
    for label, indices in order.items():
        if samples_per_class is None:
            chunks = [indices]
        else:
            full = len(indices) - len(indices) % samples_per_class
            chunks = [indices[start : start + samples_per_class] for start in range(0, full, samples_per_class)]
        chunks = [chunk for chunk in chunks if len(chunk) >= 2]
        if chunks:
            groups[label] = chunks
    return groups


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


def _grouped_death_times(
    latents: torch.Tensor, groups: dict[int, list[list[int]]]
) -> list[tuple[list[int], torch.Tensor]]:
    """Death times of every group, groups of equal size computed in one batched call.

    Returns:
        One ``(classes, deaths)`` pair per group size: ``deaths [k, size - 1]`` for the ``k`` groups of that size, whose
        classes are ``classes[0..k-1]``.
    """
    by_size: dict[int, tuple[list[int], list[list[int]]]] = {}
    for label, chunks in groups.items():
        for chunk in chunks:
            classes, indices = by_size.setdefault(len(chunk), ([], []))
            classes.append(label)
            indices.append(chunk)
    out = []
    for classes, indices in by_size.values():
        index = torch.tensor(indices, dtype=torch.long, device=latents.device)
        out.append((classes, death_times(latents[index])))
    return out


def _by_class(grouped: list[tuple[list[int], torch.Tensor]]) -> dict[int, torch.Tensor]:
    parts: dict[int, list[torch.Tensor]] = {}
    for classes, deaths in grouped:
        for label, row in zip(classes, deaths.detach(), strict=True):
            parts.setdefault(label, []).append(row)
    return {label: torch.cat(parts[label]) for label in sorted(parts)}


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
    computed in one batched call, so a class-balanced batch (every class with the same count) costs one call.

    Args:
        latents: ``[batch, dim]`` latents (or relative vectors), with gradient.
        labels: ``[batch]`` integer class of each latent.
        beta: target death time :math:`\beta \ge 0` (Hofer's default for images: 0.7; the paper: 3).
        samples_per_class: ``None`` (default): one group per class with all its samples in the batch. An integer
            ``n >= 2``: each class is cut, in batch order, into consecutive groups of exactly ``n`` samples, as in
            Hofer's batches of ``n`` per class; death times shrink as groups grow, so this keeps :math:`\beta`'s
            meaning fixed when a batch holds several groups of a class. The samples left over (fewer than ``n``) are
            left out of the loss.
        return_death_times: also return the death times, detached, per class.

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
    beta = float(beta)
    if not beta >= 0.0 or beta == float("inf"):
        raise ConfigurationError(f"beta must be a finite number >= 0 (a target MST edge length), got {beta!r}.")
    _check_latents_and_labels(latents, labels, samples_per_class)
    groups = _class_groups(labels, samples_per_class)
    if not groups:
        need = 2 if samples_per_class is None else samples_per_class
        raise TopologyError(
            f"densification_loss needs at least one class with {need} samples in the batch, got class counts "
            f"{_counts(labels)}; build class-pure batches of b classes x n samples each (e.g. TopoTrainer's "
            "class-balanced sampler)."
        )
    grouped = _grouped_death_times(latents, groups)
    loss = sum((deaths - beta).abs().sum() for _, deaths in grouped)
    if return_death_times:
        return loss, _by_class(grouped)
    return loss


def _counts(labels: torch.Tensor) -> dict[int, int]:
    values, counts = torch.unique(labels.detach().cpu(), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


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
    groups = _class_groups(labels, samples_per_class)
    return _by_class(_grouped_death_times(latents, groups)) if groups else {}
