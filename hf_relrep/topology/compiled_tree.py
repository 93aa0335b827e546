r"""The host spanning-tree kernels compiled with Numba, used by :mod:`hf_relrep.topology.host_spanning_tree` where Numba is
installed (the ``fast`` extra).

On a few 16-point clouds, what a persistence call costs is the number of calls, not the arithmetic: NumPy's Prim
makes about five calls per round. Compiled, each step is one call:

- :func:`squared_distances`: every cloud's squared distances, from the differences of the points;
- :func:`prim_edges`: Prim's algorithm on every cloud, exact in the same way as the NumPy rounds (a minimum spanning
  tree of the given squared distances; equal distances go to the lowest vertex index when choosing the next vertex,
  and to the earliest-joined tree vertex for its parent, so trees may differ from NumPy's only where lengths tie);
- :func:`edge_vectors`: the chosen edges' vectors :math:`x_v - x_u` and lengths, from the points;
- :func:`scatter_gradient`: the gradient of the points from each edge's, :math:`\pm g (x_v - x_u) / w` (0 where
  :math:`w = 0`).

The kernels are compiled on first use in each process (a second or two per dtype; no on-disk cache, which Numba keeps
as pickles) and release the GIL while they run. ``HF_RELREP_NUMBA=0`` keeps the NumPy path.
"""

import importlib.util
import os
import warnings

import numpy as np


ENV_VAR = "HF_RELREP_NUMBA"


def _squared_distances(points, sq):  # pragma: no cover - compiled; tested through `squared_distances`
    groups, n, d = points.shape
    finite = True
    for g in range(groups):
        for i in range(n):
            head = points[g, i]
            sq[g, i, i] = 0
            for j in range(i + 1, n):
                tail = points[g, j]
                total = head[0] - head[0]  # a zero of the points' dtype (NaN for a non-finite point)
                for k in range(d):
                    difference = head[k] - tail[k]
                    total += difference * difference
                sq[g, i, j] = total
                sq[g, j, i] = total
                finite = finite and np.isfinite(total)
    return finite


def _prim(sq, u, v):  # pragma: no cover - compiled; tested through `prim_edges`
    groups, n, _ = sq.shape
    nearest = np.empty(n, dtype=sq.dtype)
    parent = np.zeros(n, dtype=np.int64)
    joined = np.zeros(n, dtype=np.bool_)
    for g in range(groups):
        for i in range(n):
            nearest[i] = sq[g, 0, i]
            parent[i] = 0
            joined[i] = False
        joined[0] = True
        for k in range(n - 1):
            best = -1
            for i in range(n):
                if not joined[i] and (best < 0 or nearest[i] < nearest[best]):
                    best = i
            joined[best] = True
            u[g, k] = g * n + parent[best]
            v[g, k] = g * n + best
            for i in range(n):
                if not joined[i] and sq[g, best, i] < nearest[i]:
                    nearest[i] = sq[g, best, i]
                    parent[i] = best


def _edge_vectors(points, u, v, edges, lengths):  # pragma: no cover - compiled
    for k in range(u.shape[0]):
        head, tail, edge = points[v[k]], points[u[k]], edges[k]
        for j in range(points.shape[1]):
            edge[j] = head[j] - tail[j]
        lengths[k] = np.sqrt((edge * edge).sum())


def _scatter_gradient(edges, lengths, grad, u, v, out):  # pragma: no cover - compiled
    for k in range(u.shape[0]):
        if lengths[k] > 0:  # 0 on zero-length edges (duplicate points)
            coefficient = grad[k] / lengths[k]
            head, tail, edge = out[v[k]], out[u[k]], edges[k]
            for j in range(edges.shape[1]):  # two loops over rows: each one vectorizes
                head[j] += coefficient * edge[j]
            for j in range(edges.shape[1]):
                tail[j] -= coefficient * edge[j]


_kernels: dict = {}


def _kernel(function):
    if function not in _kernels:
        import numba

        # reassociation lets the sums vectorize; NaN and infinity keep their IEEE meaning
        _kernels[function] = numba.njit(nogil=True, cache=False, fastmath={"reassoc", "contract"})(function)
    return _kernels[function]


def squared_distances(points: np.ndarray) -> tuple[np.ndarray, bool]:
    """``([G, n, n] squared distances, all finite)`` of ``[G, n, d]`` clouds, from the differences of the points
    (no Gram form, so no cancellation); the flag is false for a NaN or infinite point, or an overflowing distance."""
    groups, n, _ = points.shape
    sq = np.empty((groups, n, n), dtype=points.dtype)
    finite = _kernel(_squared_distances)(np.ascontiguousarray(points), sq)
    return sq, bool(finite)


def prim_edges(sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compiled :func:`hf_relrep.topology.host_spanning_tree.prim_edges`: ``(u, v)``, two ``[G, n - 1]`` int64 arrays of flat
    indices ``g·n + i`` of each cloud's tree edges, from ``[G, n, n]`` squared distances (no NaN)."""
    groups, n, _ = sq.shape
    u = np.empty((groups, n - 1), dtype=np.int64)
    v = np.empty((groups, n - 1), dtype=np.int64)
    _kernel(_prim)(np.ascontiguousarray(sq), u, v)
    return u, v


def edge_vectors(points: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x[v] - x[u], |x[v] - x[u]|)`` for the flat edge ends ``u, v`` of ``[N, d]`` points: ``[k, d]`` and ``[k]``."""
    edges = np.empty((u.shape[0], points.shape[1]), dtype=points.dtype)
    lengths = np.empty(u.shape[0], dtype=points.dtype)
    _kernel(_edge_vectors)(points, u, v, edges, lengths)
    return edges, lengths


def scatter_gradient(edges: np.ndarray, lengths: np.ndarray, grad: np.ndarray, u, v, size: int) -> np.ndarray:
    """The ``[size, d]`` gradient of the points from ``grad``, the ``[k]`` gradient of each edge's length."""
    out = np.zeros((size, edges.shape[1]), dtype=edges.dtype)
    _kernel(_scatter_gradient)(edges, lengths, np.ascontiguousarray(grad, dtype=lengths.dtype), u, v, out)
    return out


def numba_available() -> bool:
    """Whether Numba is installed, imports, and is not switched off with ``HF_RELREP_NUMBA=0``.

    An installed Numba that fails to import (e.g. built for an older NumPy) gives a warning and ``False``: the NumPy
    path is used, nothing fails."""
    if os.environ.get(ENV_VAR, "1") == "0" or importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except Exception as error:  # any import failure means: not usable here
        warnings.warn(
            f"Numba is installed but does not import ({type(error).__name__}: {error}); hf-relrep's CPU spanning "
            f"trees use NumPy instead. Reinstall a Numba that matches your NumPy, or set {ENV_VAR}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


__all__ = ["ENV_VAR", "edge_vectors", "numba_available", "prim_edges", "scatter_gradient", "squared_distances"]
