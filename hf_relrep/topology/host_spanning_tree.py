r"""Minimum-spanning-tree edge lengths of small CPU point clouds, computed on the host in one autograd node.

On CPU, what a persistence call costs for the clouds a training step has (a few dozen clouds of 16–256 points) is the
number of calls, not the arithmetic: every batched torch kernel of :mod:`hf_relrep.topology.spanning_tree` is a few
microseconds of dispatch and autograd bookkeeping, more when caches are cold between a model's kernels. So on CPU:

1. the squared distances of every cloud come from one batched Gram product per tensor, measured from each cloud's
   first point (the Gram form loses :math:`\epsilon \lVert x \rVert^2` to cancellation; centring keeps it small);
2. **Prim's algorithm** runs in NumPy on all clouds of all tensors at once: ``n − 1`` rounds of five vectorized calls
   (nearest vertex, its row of distances, two element-wise updates); each vertex's parent is found afterwards in one
   masked ``argmin`` (the nearest vertex that joined before it);
3. the lengths :math:`w = \lVert x_v - x_u \rVert_2` of the chosen edges are computed from the points, not from the
   Gram form, so they are exact for close points, and sorted per cloud if asked.

All of it is one :class:`torch.autograd.Function` with a hand-written backward,
:math:`\partial w / \partial x_v = (x_v - x_u) / w = -\partial w / \partial x_u` and 0 where :math:`w = 0` (duplicate
points): an assignment and an ``index_add_`` per tensor instead of a graph of a dozen nodes (for a double backward,
``create_graph=True``, the same gradient comes from autograd ops on the points). Equal distances go to the lowest
vertex index; the sorted lengths do not depend on the choice. There is no device here to wait for, so the finiteness
check raises at once (unless checks are deferred on purpose, :func:`hf_relrep.checks.deferred_checks`).

Where Numba is installed (the ``fast`` extra; ``HF_RELREP_NUMBA=0`` turns it off), steps 1–3 and the backward's
scatter are compiled kernels instead (:mod:`hf_relrep.topology.compiled_tree`): the same trees and lengths, the distances then
from the points' differences rather than the Gram form, in a handful of calls instead of ~100.
"""

import numpy as np
import torch

from ..checks import ensure_on_host
from ..errors import NonFiniteError
from . import compiled_tree


# Clouds of up to this many points are computed here on CPU: Prim's n − 1 rounds of NumPy calls cost less than the
# batched rounds' kernels up to here (2 × 512 points: 5 vs 12 ms forward + backward), not at 2 × 1,024 (on CPU).
HOST_PRIM_MAX_POINTS = 512

# The compiled kernels (Numba, the `fast` extra) where installed; None: decided on first use (`compiled_tree`).
USE_COMPILED: bool | None = None

NON_FINITE_MESSAGE = (
    "death_times got NaN or infinite points (or points so large that squared distances overflow); check the "
    "latents (e.g. a diverged model)."
)


def on_host(n: int, device: torch.device) -> bool:
    """Whether clouds of ``n`` points on ``device`` are computed here (CPU, at most ``HOST_PRIM_MAX_POINTS``)."""
    return device.type == "cpu" and n <= HOST_PRIM_MAX_POINTS


def prim_edges(sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prim's algorithm on ``[G, n, n]`` squared distances (no NaN): ``(u, v)``, two ``[G, n - 1]`` int64 arrays of
    the tree edges of each cloud, as flat indices ``g·n + i`` into the ``G·n`` points of all clouds.

    Each round adds, in every cloud, the vertex nearest to the tree (the lowest index among equally near ones): its
    row of distances lowers ``nearest``, and ``blocked`` (``+inf`` on tree vertices, ``-inf`` elsewhere) lifts the
    tree's vertices back out of reach. ``v`` lists the vertices in the order they joined; the parent ``u`` of each is
    the nearest vertex that joined before it, which is the tree vertex it was reached from (at equal distance, the
    lowest index).
    """
    groups, n, _ = sq.shape
    rows = sq.reshape(groups * n, n)
    base = np.arange(0, groups * n, n)
    blocked = np.full((groups, n), -np.inf, dtype=sq.dtype)
    blocked[:, 0] = np.inf  # vertex 0 starts the tree
    nearest = np.maximum(sq[:, 0, :], blocked)
    block, take = blocked.reshape(-1).put, rows.take
    joined = []
    for _ in range(n - 1):
        flat = np.add(nearest.argmin(1), base)
        joined.append(flat)
        block(flat, np.inf)
        np.minimum(nearest, take(flat, 0), out=nearest)
        np.maximum(nearest, blocked, out=nearest)
    v = np.stack(joined, 1)  # flat indices, [G, n - 1]
    position = np.zeros(groups * n, dtype=np.int64)
    position[v] = np.arange(1, n)  # when each vertex joined (vertex 0: 0)
    position = position.reshape(groups, n)
    earlier = position[:, None, :] < position[:, :, None]  # [g, a, b]: b joined before a
    parent = np.where(earlier, sq, np.inf).argmin(2)
    parent += base[:, None]
    return parent.reshape(-1)[v], v


def _compiled() -> bool:
    global USE_COMPILED
    if USE_COMPILED is None:
        USE_COMPILED = compiled_tree.numba_available()
    return USE_COMPILED


_LIMITS = {np.dtype(t): np.finfo(t).max / 4 for t in (np.float32, np.float64)}  # d² <= 4 max |x - x_0|²


def _squared_distances(x: torch.Tensor, compiled: bool) -> np.ndarray:
    """``[G, n, n]`` squared distances (``>= 0``) of ``[G, n, d]`` detached CPU clouds, as a NumPy array: by the
    compiled kernel (from the points' differences) or from a Gram product.

    Non-finite points raise :class:`NonFiniteError` (inside :func:`hf_relrep.checks.deferred_checks`, a later call
    does, and the distances are all 0 here: the tree is then some spanning tree, and its lengths are NaN)."""
    sq, finite = compiled_tree.squared_distances(x.numpy()) if compiled else _gram_squared_distances(x)
    ensure_on_host(finite, lambda: NonFiniteError(NON_FINITE_MESSAGE))
    return sq if finite else np.zeros_like(sq)


def _gram_squared_distances(x: torch.Tensor) -> tuple[np.ndarray, bool]:
    """``(squared distances, all finite)`` from one batched Gram product of the clouds centred on their first point
    (the distances are not computed when a point is not finite)."""
    centred = x - x[:, :1]
    gram = torch.bmm(centred, centred.transpose(1, 2)).numpy()  # (torch's batched product: 2-3x NumPy's here)
    norms = gram.diagonal(axis1=1, axis2=2)
    if not norms.max() <= _LIMITS[gram.dtype]:  # False for NaN too
        return gram, False
    sq = norms[:, :, None] + norms[:, None, :]
    sq -= 2 * gram
    return np.maximum(sq, 0, out=sq), True  # rounding can make d² slightly negative


class _TreeLengths(torch.autograd.Function):
    r"""The MST edge lengths of each tensor of clouds, in NumPy (see the module), or, with ``betas``, the deviation
    losses :math:`\sum_{g, k} |w_{gk} - \beta|` of the lengths (then the lengths follow as outputs without gradient).

    Backward: the gradient of each edge's length becomes, per tensor, one assignment (the ``v`` ends: each vertex
    once) and one ``index_add_`` (the ``u`` ends: parents repeat), or one compiled scatter."""

    @staticmethod
    def forward(ctx, sort: bool, betas: tuple | None, valid: torch.Tensor | None, *clouds: torch.Tensor):
        ctx.set_materialize_grads(False)
        detached = [x.detach() for x in clouds]
        xs = [x.numpy() for x in detached]
        rows = None if valid is None else valid.numpy()[:, None]
        lengths, losses, saved = [], [], []
        compiled = _compiled()
        with np.errstate(all="ignore"):  # non-finite points: the check raises; NumPy need not warn
            sq = [_squared_distances(x, compiled) for x in detached]
            u, v = (compiled_tree.prim_edges if compiled else prim_edges)(
                sq[0] if len(sq) == 1 else np.concatenate(sq)
            )
            start = 0
            for s, x in enumerate(xs):
                groups, n, d = x.shape
                # this tensor's edges, as flat indices into its own points
                ends_u = u[start : start + groups].reshape(-1) - start * n
                ends_v = v[start : start + groups].reshape(-1) - start * n
                start += groups
                flat = x.reshape(groups * n, d)
                if compiled:
                    edges, w = compiled_tree.edge_vectors(flat, ends_u, ends_v)
                else:
                    edges = flat.take(ends_v, 0)
                    edges -= flat.take(ends_u, 0)
                    w = np.sqrt(np.einsum("kd,kd->k", edges, edges))
                w = w.reshape(groups, n - 1)
                order = w.argsort(1) if sort else None
                lengths.append(torch.from_numpy(np.sort(w, 1) if sort else w))
                sign = None
                if betas is not None:  # d|w - β|/dw: sign(w - β), 0 at β and on rows that do not count
                    deviation = w - w.dtype.type(betas[s])
                    sign = np.sign(deviation)
                    np.abs(deviation, out=deviation)
                    if rows is not None:
                        sign *= rows
                        deviation *= rows
                    losses.append(torch.from_numpy(np.asarray(deviation.sum())))
                saved.append((edges, w, order, sign, ends_u, ends_v, x.shape))
        ctx.saved, ctx.compiled = saved, compiled
        ctx.save_for_backward(*clouds)  # for a double backward only
        if betas is None:
            return tuple(lengths)
        ctx.mark_non_differentiable(*lengths)
        return (*losses, *lengths)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        grads = grads[: len(ctx.saved)]  # (with betas, the lengths that follow the losses have no gradient)
        if torch.is_grad_enabled():  # create_graph=True: the same gradient from autograd ops
            return (None, None, None, *map(_differentiable_gradient, grads, ctx.saved_tensors, ctx.saved))
        result: list[torch.Tensor | None] = [None, None, None]  # for `sort`, `betas`, `valid`
        for grad, (edges, w, order, sign, ends_u, ends_v, shape) in zip(grads, ctx.saved, strict=True):
            if grad is None:
                result.append(None)
                continue
            per_edge = _edge_gradient(grad.numpy(), w, order, sign)
            if ctx.compiled:
                points = compiled_tree.scatter_gradient(
                    edges, w.reshape(-1), per_edge.reshape(-1), ends_u, ends_v, shape[0] * shape[1]
                )
                result.append(torch.from_numpy(points).view(shape))
                continue
            coefficient = np.divide(per_edge, w, out=np.zeros_like(w), where=w > 0)  # 0 on zero-length edges
            scaled = edges * coefficient.reshape(-1, 1)
            points = np.zeros((shape[0] * shape[1], shape[2]), dtype=edges.dtype)
            points[ends_v] = scaled  # Prim's v: every vertex but the first of its cloud, once
            points = torch.from_numpy(points)
            points.index_add_(0, torch.from_numpy(ends_u), torch.from_numpy(np.negative(scaled, out=scaled)))
            result.append(points.view(shape))
        return tuple(result)


def _edge_gradient(grad: np.ndarray, w: np.ndarray, order: np.ndarray | None, sign: np.ndarray | None) -> np.ndarray:
    """``[G, k]`` gradient of each edge's length, in edge order, from the gradient of an output: a loss (``sign``),
    sorted lengths (``order``) or lengths in edge order."""
    if sign is not None:
        return sign * grad
    if order is None:
        return grad
    unsorted = np.empty_like(w)
    unsorted[np.arange(w.shape[0])[:, None], order] = grad
    return unsorted


def _differentiable_gradient(grad: torch.Tensor | None, x: torch.Tensor, saved: tuple) -> torch.Tensor | None:
    """The gradient of :class:`_TreeLengths` for one tensor from autograd ops on the points, so that it has a gradient
    itself (a double backward). The tree stays the one the forward chose."""
    if grad is None:
        return None
    _, _, order, sign, ends_u, ends_v, shape = saved
    if sign is not None:
        grad = grad * torch.from_numpy(sign)
    elif order is not None:
        grad = torch.empty_like(grad).scatter_(1, torch.from_numpy(order), grad)
    u, v = torch.from_numpy(ends_u), torch.from_numpy(ends_v)
    flat = x.reshape(shape[0] * shape[1], shape[2])
    edges = flat.index_select(0, v) - flat.index_select(0, u)
    w = torch.linalg.vector_norm(edges, dim=1)
    positive = w > 0
    coefficient = torch.where(positive, grad.reshape(-1) / torch.where(positive, w, 1.0), 0.0)  # 0 on zero-length
    scaled = edges * coefficient.unsqueeze(1)
    return torch.zeros_like(flat).index_add(0, v, scaled).index_add(0, u, -scaled).view(shape)


def host_tree_lengths(clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
    """Differentiable MST edge lengths of every tensor of CPU clouds, one Prim computation for all of them.

    Args:
        clouds: CPU float32 or float64 tensors ``[G_s, n, d_s]``, the same ``n`` (at least 2) in each.
        sort: sort each cloud's lengths ascending (gradients follow the values).

    Returns:
        One ``[G_s, n - 1]`` tensor per tensor of ``clouds``, in the dtype of that tensor.

    Raises:
        NonFiniteError: a point is NaN or infinite, or so large that squared distances overflow.
    """
    return list(_TreeLengths.apply(sort, None, None, *clouds))


def host_deviation_losses(
    clouds: list[torch.Tensor], betas: list[float], valid: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""Per tensor of CPU clouds, :math:`R = \sum_{g} \sum_k |w_{gk} - \beta|` over the MST edge lengths :math:`w`
    of its clouds: a training step's densification terms, with one Prim computation and one autograd node for all.

    Args:
        clouds: as for :func:`host_tree_lengths`.
        betas: the target length :math:`\beta` of each tensor.
        valid: ``[G]`` boolean mask of the rows that count (the others add nothing and get no gradient), or ``None``.

    Returns:
        ``(losses, lengths)``: the 0-dim loss of each tensor, with gradient (:math:`\operatorname{sign}(w - \beta)`
        per edge, 0 at :math:`w = \beta`), and its ``[G_s, n - 1]`` lengths in edge order, without gradient.

    Raises:
        NonFiniteError: as for :func:`host_tree_lengths`.
    """
    outputs = _TreeLengths.apply(False, tuple(float(b) for b in betas), valid, *clouds)
    return list(outputs[: len(clouds)]), list(outputs[len(clouds) :])
