"""The ``"numpy-prim"`` persistence backend: Prim's algorithm on CPU clouds in vectorized NumPy rounds.

The kernels of :class:`~hf_relrep.topology.backends.host_prim.HostPrim`:

- squared distances from one batched Gram product per tensor, measured from each cloud's first point
  (:func:`~hf_relrep.topology.backends.base.centred_gram`);
- :func:`prim_edges`: ``n − 1`` rounds of five vectorized calls for all clouds at once;
- the chosen edges' vectors and lengths from the points, and the backward's scatter (an assignment and an
  ``index_add_``).

What ``"auto"`` picks for CPU clouds of up to 512 points where Numba is not installed (or ``HF_RELREP_NUMBA=0``).
"""

import numpy as np
import torch

from .base import PersistenceBackend, centred_gram
from .host_prim import HostPrim, on_host


_LIMITS = {np.dtype(t): np.finfo(t).max / 4 for t in (np.float32, np.float64)}  # d² <= 4 max |x - x_0|²


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


class NumpyPrim(HostPrim):
    """Prim on the host in NumPy rounds: CPU only, any number of points (``"auto"`` takes it up to 512)."""

    name = "numpy-prim"

    def squared_distances(self, x: torch.Tensor) -> tuple[np.ndarray, bool]:
        gram, _ = centred_gram(x)  # (torch's batched product: 2-3x NumPy's here)
        gram = gram.numpy()
        norms = gram.diagonal(axis1=1, axis2=2)
        if not norms.max() <= _LIMITS[gram.dtype]:  # False for NaN too: the distances are not computed
            return gram, False
        sq = norms[:, :, None] + norms[:, None, :]
        sq -= 2 * gram
        return np.maximum(sq, 0, out=sq), True  # rounding can make d² slightly negative

    def prim_edges(self, sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return prim_edges(sq)

    def edge_vectors(self, points: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = points.take(v, 0)
        edges -= points.take(u, 0)
        return edges, np.sqrt(np.einsum("kd,kd->k", edges, edges))

    def scatter_gradient(
        self, edges: np.ndarray, w: np.ndarray, grad: np.ndarray, u: np.ndarray, v: np.ndarray, shape: torch.Size
    ) -> torch.Tensor:
        coefficient = np.divide(grad, w, out=np.zeros_like(w), where=w > 0)  # 0 on zero-length edges
        scaled = edges * coefficient.reshape(-1, 1)
        points = np.zeros((shape[0] * shape[1], shape[2]), dtype=edges.dtype)
        points[v] = scaled  # Prim's v: every vertex but the first of its cloud, once
        points = torch.from_numpy(points)
        points.index_add_(0, torch.from_numpy(u), torch.from_numpy(np.negative(scaled, out=scaled)))
        return points.view(shape)


NUMPY_PRIM = NumpyPrim()


def dispatch_numpy_prim(n: int, device: torch.device) -> PersistenceBackend | None:
    """Prim in NumPy rounds for CPU clouds of up to 512 points."""
    return NUMPY_PRIM if on_host(n, device) else None


__all__ = ["NUMPY_PRIM", "NumpyPrim", "dispatch_numpy_prim", "prim_edges"]
