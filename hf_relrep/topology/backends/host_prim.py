r"""Prim's algorithm on the host for small CPU clouds: what the ``"numpy-prim"`` and ``"numba-prim"`` backends share.

On CPU, what a persistence call costs for the clouds a training step has (a few dozen clouds of 16–256 points) is the
number of calls, not the arithmetic: every batched torch kernel of the Borůvka rounds
(:mod:`hf_relrep.topology.backends.boruvka`) is a few microseconds of dispatch and autograd bookkeeping, more when
caches are cold between a model's kernels. So on CPU, for all clouds of all tensors at once:

1. the squared distances of every cloud;
2. **Prim's algorithm** on all of them, each vertex joining the tree from its nearest tree vertex;
3. the lengths :math:`w = \lVert x_v - x_u \rVert_2` of the chosen edges, from the points (exact for close points),
   sorted per cloud if asked.

All of it is one :class:`torch.autograd.Function` with a hand-written backward,
:math:`\partial w / \partial x_v = (x_v - x_u) / w = -\partial w / \partial x_u` and 0 where :math:`w = 0` (duplicate
points): a scatter per tensor instead of a graph of a dozen nodes (for a double backward, ``create_graph=True``, the
same gradient comes from autograd ops on the points). With targets :math:`\beta`, the same node returns the deviation
losses :math:`\sum |w - \beta|` directly (a training step's densification terms, one node for all spaces). There is
no device here to wait for, so the finiteness check raises at once (unless checks are deferred on purpose,
:func:`hf_relrep.checks.deferred_checks`).

Steps 1–3 and the backward's scatter are a backend's four kernels (:class:`HostPrim`): NumPy calls
(:mod:`~hf_relrep.topology.backends.numpy_prim`) or compiled Numba loops
(:mod:`~hf_relrep.topology.backends.numba_prim`).
"""

from collections.abc import Sequence

import numpy as np
import torch

from ...checks import ensure_on_host
from ...errors import ConfigurationError
from .base import PersistenceBackend, non_finite


# Clouds of up to this many points are computed here on CPU by "auto": Prim's n − 1 rounds of NumPy calls cost less
# than the batched rounds' kernels up to here (2 × 512 points: 5 vs 12 ms forward + backward), not at 2 × 1,024.
HOST_PRIM_MAX_POINTS = 512


def on_host(n: int, device: torch.device) -> bool:
    """Whether ``"auto"`` computes clouds of ``n`` points on ``device`` by Prim on the host (CPU, at most
    :data:`HOST_PRIM_MAX_POINTS` points)."""
    return device.type == "cpu" and n <= HOST_PRIM_MAX_POINTS


class HostPrim(PersistenceBackend):
    """Prim's algorithm on CPU clouds in one autograd node; subclasses provide the four kernels."""

    def refusal(self, n: int, device: torch.device) -> ConfigurationError | None:
        if device.type != "cpu":
            return ConfigurationError(
                f"The persistence backend {self.name!r} computes CPU tensors only, got points on {device}; use "
                "backend='auto' or 'boruvka'."
            )
        return None

    def squared_distances(self, x: torch.Tensor) -> tuple[np.ndarray, bool]:
        """``([G, n, n] squared distances >= 0, all finite)`` of ``[G, n, d]`` detached CPU clouds."""
        raise NotImplementedError

    def prim_edges(self, sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prim's algorithm on ``[G, n, n]`` squared distances: ``(u, v)``, two ``[G, n - 1]`` int64 arrays of the
        tree edges of each cloud as flat indices ``g·n + i``, ``v`` in the order the vertices joined and ``u`` the
        tree vertex each was reached from."""
        raise NotImplementedError

    def edge_vectors(self, points: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x[v] - x[u], |x[v] - x[u]|)`` for the flat edge ends ``u, v`` of ``[N, d]`` points: ``[k, d]``, ``[k]``."""
        raise NotImplementedError

    def scatter_gradient(
        self, edges: np.ndarray, w: np.ndarray, grad: np.ndarray, u: np.ndarray, v: np.ndarray, shape: torch.Size
    ) -> torch.Tensor:
        """The gradient of the points (``shape``: ``[G, n, d]``) from ``grad``, the ``[G, k]`` gradient of each
        edge's length ``w``: :math:`\\pm g (x_v - x_u) / w` at the ends, 0 on zero-length edges."""
        raise NotImplementedError

    def checked_squared_distances(self, x: torch.Tensor) -> np.ndarray:
        """:meth:`squared_distances`, with non-finite points raising :class:`NonFiniteError` (inside
        :func:`hf_relrep.checks.deferred_checks`, a later call does, and the distances are all 0 here: the tree is
        then some spanning tree, and its lengths are NaN)."""
        sq, finite = self.squared_distances(x)
        ensure_on_host(finite, non_finite)
        return sq if finite else np.zeros_like(sq)

    def tree_lengths(self, clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
        return list(_TreeLengths.apply(self, sort, None, None, *clouds))

    def deviation_losses(
        self, clouds: list[torch.Tensor], betas: Sequence[float], valid: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs = _TreeLengths.apply(self, False, tuple(float(b) for b in betas), valid, *clouds)
        return list(outputs[: len(clouds)]), list(outputs[len(clouds) :])


class _TreeLengths(torch.autograd.Function):
    r"""The MST edge lengths of each tensor of clouds by a :class:`HostPrim` backend's kernels, or, with ``betas``,
    the deviation losses :math:`\sum_{g, k} |w_{gk} - \beta|` of the lengths (then the lengths follow as outputs
    without gradient)."""

    @staticmethod
    def forward(ctx, backend: HostPrim, sort: bool, betas: tuple | None, valid: torch.Tensor | None, *clouds):
        ctx.set_materialize_grads(False)
        detached = [x.detach() for x in clouds]
        xs = [x.numpy() for x in detached]
        rows = None if valid is None else valid.numpy()[:, None]
        lengths, losses, saved = [], [], []
        with np.errstate(all="ignore"):  # non-finite points: the check raises; NumPy need not warn
            sq = [backend.checked_squared_distances(x) for x in detached]
            u, v = backend.prim_edges(sq[0] if len(sq) == 1 else np.concatenate(sq))
            start = 0
            for s, x in enumerate(xs):
                groups, n, d = x.shape
                # this tensor's edges, as flat indices into its own points
                ends_u = u[start : start + groups].reshape(-1) - start * n
                ends_v = v[start : start + groups].reshape(-1) - start * n
                start += groups
                edges, w = backend.edge_vectors(x.reshape(groups * n, d), ends_u, ends_v)
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
        ctx.saved, ctx.backend = saved, backend
        ctx.save_for_backward(*clouds)  # for a double backward only
        if betas is None:
            return tuple(lengths)
        ctx.mark_non_differentiable(*lengths)
        return (*losses, *lengths)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        grads = grads[: len(ctx.saved)]  # (with betas, the lengths that follow the losses have no gradient)
        if torch.is_grad_enabled():  # create_graph=True: the same gradient from autograd ops
            return (None, None, None, None, *map(_differentiable_gradient, grads, ctx.saved_tensors, ctx.saved))
        result: list[torch.Tensor | None] = [None, None, None, None]  # for `backend`, `sort`, `betas`, `valid`
        for grad, (edges, w, order, sign, ends_u, ends_v, shape) in zip(grads, ctx.saved, strict=True):
            if grad is None:
                result.append(None)
                continue
            per_edge = _edge_gradient(grad.numpy(), w, order, sign)
            result.append(ctx.backend.scatter_gradient(edges, w, per_edge, ends_u, ends_v, shape))
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


__all__ = ["HOST_PRIM_MAX_POINTS", "HostPrim", "on_host"]
