r"""0-dimensional persistence of point clouds: the death times that topological densification reads.

For a finite point cloud :math:`D = \{x_1, \dots, x_n\} \subset \mathbb{R}^d`, the Vietoris–Rips filtration adds the
edge :math:`\{x_i, x_j\}` at time :math:`\lVert x_i - x_j \rVert_2`. All :math:`n` connected components are born at
time 0 and :math:`n - 1` of them die when an edge first joins two components, which is exactly Kruskal's algorithm:
the death times :math:`\dagger(D)` are the :math:`n - 1` edge lengths of a Euclidean minimum spanning tree of
:math:`D` (Hofer, Graf, Rieck, Niethammer, Kwitt, "Topologically Densified Distributions", ICML 2020). The multiset of
MST edge lengths is unique even when the tree is not.

Gradients: the tree is chosen on detached distances, exactly, for all groups and spaces together, by a backend
(:mod:`hf_relrep.topology.backends`; :mod:`hf_relrep.topology.dispatch` picks one: on CPU, Prim on the host for
small clouds, otherwise about :math:`\log_2 n` batched Borůvka rounds); the death times are then the differentiable lengths
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

import torch

from ..errors import TopologyError
from .dispatch import AUTO, persistence_backend, tree_lengths


def death_times(
    points: torch.Tensor | Sequence[torch.Tensor], *, backend: str = AUTO
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
        backend: which backend computes the trees (:mod:`hf_relrep.topology.dispatch`). ``"auto"`` (default):
            exact spanning trees of all clouds at once on whatever device ``points`` is on: on CPU, clouds of up to
            512 points take Prim's algorithm on the host in one autograd node (``"numba-prim"`` where Numba imports
            and ``HF_RELREP_NUMBA`` is not ``0``, else ``"numpy-prim"``); elsewhere, batched Borůvka rounds without
            host synchronisation (``"boruvka"``). Or one of these by name, or ``"gudhi"``: the death edges of
            gudhi's Rips persistence pairs, computed on CPU in float64 one cloud at a time, a reference with the
            same values and gradients. ``"torch"`` is a deprecated name of ``"auto"``.

    Returns:
        ``[n - 1]`` or ``[groups, n - 1]`` death times, sorted ascending within each cloud; a list of those for a list.

    Raises:
        TopologyError: a tensor is not floating point of shape ``[n, d]`` or ``[groups, n, d]`` with
            ``2 <= n <= 2048`` (the host Prim backends and gudhi have no upper bound when named).
        NonFiniteError: ``points`` contains NaN or infinite values (on CUDA: raised by a later call, see
            :mod:`hf_relrep.checks`).
        ConfigurationError: unknown ``backend``, or a named backend that cannot run here (``"numba-prim"`` without
            Numba, a host Prim backend on an accelerator).

    Note:
        Higher-order gradients (``create_graph=True``) treat the tree as fixed, like the first-order ones: they are
        those of the chosen edges' lengths.
    """
    chosen = persistence_backend(backend)
    several = isinstance(points, (list, tuple))
    tensors = list(points) if several else [points]
    if not tensors:
        raise TopologyError("death_times got an empty list of point tensors; pass at least one [n, d] tensor.")
    clouds = []
    for tensor in tensors:
        _check_points(tensor)
        x = tensor if tensor.ndim == 3 else tensor.unsqueeze(0)
        clouds.append(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
    deaths = tree_lengths(clouds, backend=chosen, sort=True)
    deaths = [d if t.ndim == 3 else d.squeeze(0) for d, t in zip(deaths, tensors, strict=True)]
    return deaths if several else deaths[0]


def _check_points(points: torch.Tensor) -> None:
    """Shape and dtype checks; finiteness is checked by the backend, on the distances it computes anyway; the size
    limit, by the backend too."""
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
