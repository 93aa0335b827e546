r"""The ``"numba-prim"`` persistence backend: Prim on CPU clouds with the kernels compiled by Numba (the ``fast``
extra).

On a few 16-point clouds, what a persistence call costs is the number of calls, not the arithmetic: NumPy's Prim
(:mod:`~hf_relrep.topology.backends.numpy_prim`) makes about five calls per round. Compiled, each kernel of
:class:`~hf_relrep.topology.backends.host_prim.HostPrim` is one call:

- squared distances from the differences of the points (no Gram form, so no cancellation);
- Prim's algorithm on every cloud, exact in the same way as the NumPy rounds (a minimum spanning tree of the given
  squared distances; equal distances go to the lowest vertex index when choosing the next vertex, and to the
  earliest-joined tree vertex for its parent, so trees may differ from NumPy's only where lengths tie);
- the chosen edges' vectors :math:`x_v - x_u` and lengths, from the points;
- the gradient of the points from each edge's, :math:`\pm g (x_v - x_u) / w` (0 where :math:`w = 0`).

Numba is imported on first use, never by ``import hf_relrep``; the kernels are compiled then, once per process and
dtype (a second or two; no on-disk cache, which Numba keeps as pickles) and release the GIL while they run.
``"auto"`` picks this backend for CPU clouds of up to 512 points where Numba imports, unless ``HF_RELREP_NUMBA=0``.
"""

import functools
import importlib.util
import os
import warnings

import numpy as np
import torch

from ...errors import ConfigurationError
from .base import PersistenceBackend
from .host_prim import HostPrim, on_host


ENV_VAR = "HF_RELREP_NUMBA"


def _squared_distances(points, sq):  # pragma: no cover - compiled; tested through the backend
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


def _prim(sq, u, v):  # pragma: no cover - compiled; tested through the backend
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


@functools.cache
def numba_imports() -> bool:
    """Whether Numba is installed and imports (asked once per process).

    An installed Numba that fails to import (e.g. built for an older NumPy) gives a warning and ``False``: ``"auto"``
    uses NumPy instead, nothing fails."""
    if importlib.util.find_spec("numba") is None:
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


@functools.cache
def numba_available() -> bool:
    """Whether ``"auto"`` may use Numba: ``HF_RELREP_NUMBA`` is not ``0`` (then Numba is not even imported) and Numba
    imports (:func:`numba_imports`).

    Decided once per process, on first use (the environment is not read again at every call of a training step);
    ``numba_available.cache_clear()`` decides again."""
    return os.environ.get(ENV_VAR, "1") != "0" and numba_imports()


class NumbaPrim(HostPrim):
    """Prim on the host with Numba kernels: CPU only, where Numba imports (``"auto"`` takes it up to 512 points)."""

    name = "numba-prim"

    def refusal(self, n: int, device: torch.device) -> ConfigurationError | None:
        if not numba_imports():
            return ConfigurationError(
                "The persistence backend 'numba-prim' needs Numba, which is not installed here or does not import; "
                "pip install 'hf-relrep[fast]' or use backend='numpy-prim'."
            )
        return super().refusal(n, device)

    def squared_distances(self, x: torch.Tensor) -> tuple[np.ndarray, bool]:
        points = x.numpy()
        groups, n, _ = points.shape
        sq = np.empty((groups, n, n), dtype=points.dtype)
        finite = _kernel(_squared_distances)(np.ascontiguousarray(points), sq)
        return sq, bool(finite)

    def prim_edges(self, sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        groups, n, _ = sq.shape
        u = np.empty((groups, n - 1), dtype=np.int64)
        v = np.empty((groups, n - 1), dtype=np.int64)
        _kernel(_prim)(np.ascontiguousarray(sq), u, v)
        return u, v

    def edge_vectors(self, points: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = np.empty((u.shape[0], points.shape[1]), dtype=points.dtype)
        lengths = np.empty(u.shape[0], dtype=points.dtype)
        _kernel(_edge_vectors)(points, u, v, edges, lengths)
        return edges, lengths

    def scatter_gradient(
        self, edges: np.ndarray, w: np.ndarray, grad: np.ndarray, u: np.ndarray, v: np.ndarray, shape: torch.Size
    ) -> torch.Tensor:
        out = np.zeros((shape[0] * shape[1], edges.shape[1]), dtype=edges.dtype)
        grad = np.ascontiguousarray(grad.reshape(-1), dtype=w.dtype)
        _kernel(_scatter_gradient)(edges, w.reshape(-1), grad, u, v, out)
        return torch.from_numpy(out).view(shape)


NUMBA_PRIM = NumbaPrim()


def dispatch_numba_prim(n: int, device: torch.device) -> PersistenceBackend | None:
    """Prim with Numba kernels for CPU clouds of up to 512 points, where Numba imports and is not switched off."""
    return NUMBA_PRIM if on_host(n, device) and numba_available() else None


__all__ = ["ENV_VAR", "NUMBA_PRIM", "NumbaPrim", "dispatch_numba_prim", "numba_available", "numba_imports"]
