"""Point clouds and reference death times shared by the topology tests (imported by basename: tests folders are not
packages)."""

import gudhi
import numpy as np
import pytest
import torch

from hf_relrep.topology.backends.numba_prim import numba_imports
from hf_relrep.topology.dispatch import BACKENDS


def backend_params(*, auto: bool = True, reference: bool = True) -> list:
    """Every registered backend name as a pytest parameter ("numba-prim" skipped where Numba does not import)."""
    skip_numba = pytest.mark.skipif(not numba_imports(), reason="Numba is not installed (the `fast` extra)")
    names = [n for n in BACKENDS if (auto or n != "auto") and (reference or n != "gudhi")]
    return [pytest.param(n, marks=skip_numba) if n == "numba-prim" else n for n in names]


def random_cloud(seed: int, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def tied_cloud(seed: int, groups: int, n: int, d: int) -> torch.Tensor:
    """Integer points on a small grid with repeated rows: many equal distances and zero-length edges."""
    rng = np.random.default_rng(seed)
    points = rng.integers(-2, 3, size=(groups, n, d)).astype(np.float64)
    repeat = rng.integers(0, n, size=(groups, n // 3))
    for g in range(groups):
        points[g, rng.integers(0, n, size=n // 3)] = points[g, repeat[g]]
    return torch.from_numpy(points)


def gudhi_death_times(points: np.ndarray) -> np.ndarray:
    """gudhi's finite 0-dimensional deaths of one cloud, zero-length ones (duplicate points) included, sorted:
    from gudhi's own persistence diagram, independent of our backends."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    tree = gudhi.RipsComplex(distance_matrix=distances).create_simplex_tree(max_dimension=1)
    tree.compute_persistence(min_persistence=-1.0)
    deaths = tree.persistence_intervals_in_dimension(0)[:, 1]
    return np.sort(deaths[np.isfinite(deaths)])


def assert_spanning_trees(u, v, n: int) -> None:
    """Each row of edges ``(u, v)`` is a spanning tree of ``n`` vertices (``n - 1`` edges and no cycle)."""
    for edges_u, edges_v in zip(u.tolist(), v.tolist(), strict=True):
        assert len(edges_u) == n - 1
        parent = list(range(n))

        def root(a: int, parent: list[int] = parent) -> int:
            while parent[a] != a:
                a = parent[a]
            return a

        for a, b in zip(edges_u, edges_v, strict=True):
            assert root(a) != root(b), "the edges form a cycle"
            parent[root(a)] = root(b)
