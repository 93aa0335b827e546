r"""0-dimensional persistence of point clouds: the death times that topological densification reads.

For a finite point cloud :math:`D = \{x_1, \dots, x_n\} \subset \mathbb{R}^d`, the Vietoris–Rips filtration adds the
edge :math:`\{x_i, x_j\}` at time :math:`\lVert x_i - x_j \rVert_2`. All :math:`n` connected components are born at
time 0 and :math:`n - 1` of them die when an edge first joins two components, which is exactly Kruskal's algorithm:
the death times :math:`\dagger(D)` are the :math:`n - 1` edge lengths of a Euclidean minimum spanning tree of
:math:`D` (Hofer, Graf, Rieck, Niethammer, Kwitt, "Topologically Densified Distributions", ICML 2020). The multiset of
MST edge lengths is unique even when the tree is not.

Gradients: the tree is chosen on detached distances, exactly, for all groups and spaces together (small CPU clouds:
Prim on the host, :mod:`hf_relrep.topology.host_spanning_tree`; otherwise about :math:`\log_2 n` batched rounds,
:mod:`hf_relrep.topology.spanning_tree`); the death times are then the differentiable lengths
:math:`\lVert x_u - x_v \rVert_2` of the chosen edges :math:`(u, v)`, so
:math:`\partial w / \partial x_u = (x_u - x_v) / w` and the gradient is 0 for a zero-length edge (duplicate points).

Nothing here waits for an accelerator: on CUDA, the finiteness checks are deferred (:mod:`hf_relrep.checks`). The
loss built on the death times of class-pure groups is :mod:`hf_relrep.topology.densification`.

Example:
    >>> import torch
    >>> from hf_relrep.topology import death_times
    >>> death_times(torch.tensor([[0.0], [1.0], [3.0]]))
    tensor([1., 2.])
"""

from collections.abc import Sequence

import numpy as np
import torch

from ..checks import ensure
from ..errors import ConfigurationError, NonFiniteError, TopologyError
from .host_spanning_tree import NON_FINITE_MESSAGE, host_tree_lengths, on_host
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
            (:mod:`hf_relrep.topology.host_spanning_tree`); elsewhere, batched rounds without host synchronisation
            (:mod:`hf_relrep.topology.spanning_tree`).
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
