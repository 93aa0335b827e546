"""The ``"gudhi"`` persistence backend: the death edges of gudhi's Rips persistence pairs, a reference.

The tree is read from gudhi's 0-dimensional persistence pairs (``flag_persistence_generators``), computed on CPU in
float64 one cloud at a time, with no bound on the number of points; the lengths of those edges are then computed
from the points on their own device by plain autograd ops
(:func:`~hf_relrep.topology.backends.base.edge_lengths`): the same values and gradients as the other backends. gudhi
is imported on first use; ``"auto"`` never picks this backend.
"""

import importlib.util

import numpy as np
import torch

from ...errors import ConfigurationError, TopologyError
from .base import PersistenceBackend, edge_lengths, non_finite


def gudhi_edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Death edges of gudhi's 0-dimensional Rips persistence pairs of ``[G, n, d]`` clouds, one cloud at a time, as
    ``(u, v)``, two ``[G, n - 1]`` long tensors on the device of ``x``.

    Raises:
        NonFiniteError: a point is NaN or infinite.
    """
    import gudhi

    groups, n, _ = x.shape
    x64 = x.detach().to("cpu", torch.float64)
    distances = torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    if not np.isfinite(distances).all():
        raise non_finite()
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


class Gudhi(PersistenceBackend):
    """gudhi's persistence pairs, one cloud at a time on CPU: any device (the tree is found on CPU), any size."""

    name = "gudhi"

    def refusal(self, n: int, device: torch.device) -> ConfigurationError | None:
        if importlib.util.find_spec("gudhi") is None:
            return ConfigurationError(
                "The persistence backend 'gudhi' needs gudhi, which is not installed here; pip install gudhi, or use "
                "backend='auto'."
            )
        return None

    def tree_lengths(self, clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
        return edge_lengths(clouds, [gudhi_edges(x) for x in clouds], sort=sort)


GUDHI = Gudhi()

__all__ = ["GUDHI", "Gudhi", "gudhi_edges"]
