r"""The ``"boruvka"`` persistence backend: exact Euclidean minimum spanning trees of many clouds at once, on any device.

The 0-dimensional persistence of :mod:`hf_relrep.topology.persistence` needs, per step, the minimum spanning tree (MST) of a few
dozen clouds of 16–256 points. At that size the cost is the number of sequential calls, not the arithmetic. The squared
distances of each cloud come from one batched Gram product; then the tree is found in :math:`O(\log n)` **batched
rounds** for all clouds (and all spaces) together, with static shapes and no host synchronisation: what ``"auto"`` picks on
accelerators and for large CPU clouds (small CPU clouds take Prim's algorithm on the host,
:mod:`hf_relrep.topology.backends.host_prim`).

The batched rounds:

1. **Unique keys.** Each edge :math:`\{i, j\}`
   (:math:`i < j`) gets the integer key ``(bits(d²_ij) << s) | (i·n + j)``: the bits of a non-negative float order like
   the float, so keys order edges by (distance, smaller index, larger index) and no two are equal. With distinct
   weights the MST is unique and every cut's lightest edge is in it, which makes the rounds below exact (no cycles).
2. **Borůvka rounds with contraction.** Every component takes its lightest outgoing edge (a row minimum of the key
   matrix), the chosen edges hook components together (2-cycles, i.e. two components that chose the same edge, are
   broken towards the smaller label), pointer jumping finds each component's root in :math:`\lceil\log_2 m\rceil`
   gathers, and a row- then column-``scatter_reduce(amin)`` contracts the key matrix to the surviving components,
   relabelled ``0..m'-1``. Each round at least halves the number of components, so after round ``r`` the matrix is at
   most :math:`\lceil n / 2^r\rceil` wide: static shapes, no data-dependent control flow, no host synchronisation.
3. **Minimax closure** once the contracted matrix is small: with keys :math:`K`, the bottleneck matrix
   :math:`B = \min_{\text{paths}} \max_{\text{edges}} K` comes from :math:`\lceil\log_2(m-1)\rceil` min-max squarings
   :math:`B \leftarrow \min_l \max(B_{il}, B_{lj})`, and an edge is in the MST iff :math:`B_{ij} = K_{ij}` (cycle
   property: no path of lighter edges joins its ends).

The MST of the contracted graph plus the edges chosen by the rounds is the MST of the cloud (Borůvka's invariant). The
lengths of the ``n − 1`` tree edges are then computed from the points by plain autograd ops
(:func:`hf_relrep.topology.backends.base.edge_lengths`). Nothing waits for an accelerator: the finiteness check is
deferred there (:mod:`hf_relrep.checks`).
"""

import math
from collections.abc import Sequence

import torch

from ...checks import ensure
from ...errors import TopologyError
from .base import PersistenceBackend, centred_gram, edge_lengths, non_finite


# The contracted key matrix is closed by min-max squaring once groups × m³ is at most this (a few dense kernels beat
# a Borůvka round of ~20 small ones); above it, another Borůvka round halves m first. Measured on CPU and tuned there.
CLOSURE_MAX_ELEMENTS = 2**16
# At most this many points per cloud: a key (31 bits of a float32 distance, then the edge index) must be an integer
# that float64 represents exactly, 31 + bits(n²) <= 53.
MAX_POINTS = 2**11


class _Constants:
    """Per (n, device): the number ``shift`` of low key bits that hold the edge index, the "no edge" key (above every
    real key, with the junk slot ``n²`` in its low bits), the symmetric edge index ``min(i, j)·n + max(i, j)`` as
    float64 (diagonal: "no edge"), the flat mask of edges ``i < j``, a diagonal of ``-inf``, and ``arange(n)``."""

    def __init__(self, n: int, device: torch.device) -> None:
        i = torch.arange(n, device=device)
        self.shift = (n * n).bit_length()
        self.no_edge = float((0x7FFFFFFF << self.shift) | (n * n))  # float32 bits stop at 0x7F800000 (inf)
        index = torch.minimum(i.unsqueeze(1), i.unsqueeze(0)) * n + torch.maximum(i.unsqueeze(1), i.unsqueeze(0))
        # the diagonal's d² is exactly 0, so its key is exactly "no edge"
        self.index = index.double().fill_diagonal_(self.no_edge)
        self.upper = (i.unsqueeze(1) < i.unsqueeze(0)).view(n * n)
        self.zero_diagonal = torch.zeros(n, n, dtype=torch.float64, device=device).fill_diagonal_(-math.inf)
        self.arange_n = i


_constants: dict[tuple[int, str], _Constants] = {}


def _edge_constants(n: int, device: torch.device) -> _Constants:
    key = (n, str(device))
    if key not in _constants:
        _constants[key] = _Constants(n, device)
    return _constants[key]


def _squared_distances(clouds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Squared distances of every cloud, from one batched Gram product per tensor, rounded to float32.

    Returns:
        ``(sq, sq_norms)``: ``sq [G, n, n]`` float32, ``>= 0`` (NaN for bad points), all tensors' clouds stacked; and
        per tensor of ``clouds`` the ``[G_s, n]`` squared norms of the points relative to each cloud's first point
        (NaN or inf there means bad points).
    """
    squared, sq_norms = [], []
    for x in clouds:
        gram, norms = centred_gram(x.detach())
        sq = torch.add(norms.unsqueeze(2) + norms.unsqueeze(1), gram, alpha=-2.0)
        if sq.dtype != torch.float32:  # float64: scale each cloud into float32's range before rounding to it
            sq = (sq / norms.amax(1).clamp_min(torch.finfo(sq.dtype).tiny)[:, None, None]).float()
        squared.append(sq)
        sq_norms.append(norms)
    sq = torch.cat(squared) if len(squared) > 1 else squared[0]
    # rounding can make d² slightly negative (never -0.0: norms are >= +0); NaN (bad points) stays NaN, and the trees
    # below stay spanning trees with valid indices (callers check sq_norms)
    return sq.clamp_min_(0.0), sq_norms


def _edge_keys(sq: torch.Tensor, const: _Constants) -> torch.Tensor:
    """Unique keys ``[G, n, n]`` of the edges, ordered like (distance, i, j), ``i < j``; symmetric, diagonal "no edge".

    The key of edge ``{i, j}`` is the integer ``bits(d²_ij) · 2^shift + i·n + j`` held exactly in a float64: the bits
    of a non-negative float32 order like the float, so keys order edges by distance first and no two are equal. A NaN
    distance's bits still rank below "no edge".
    """
    keys = torch.add(const.index, sq.view(torch.int32), alpha=2**const.shift)  # float64, exact integers
    return torch.minimum(keys, keys.transpose(1, 2))  # the Gram product need not be bitwise symmetric


def minimum_spanning_edges(clouds: Sequence[torch.Tensor]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list]:
    """Edges of the minimum spanning tree of every cloud, for several batches of clouds in one computation.

    Args:
        clouds: tensors ``[G_s, n, d_s]`` (floating point, on one device): the same number ``2 <= n <= 2048`` of
            points in every cloud, any number of clouds ``G_s`` and any dimension ``d_s`` per tensor (e.g. the latents
            and the relative vectors of one batch). They are detached: nothing here records a graph.

    Returns:
        ``(edges, sq_norms)``: ``edges[s] = (u, v)``, two ``[G_s, n - 1]`` long tensors with the tree edges ``u < v``
        of each cloud of ``clouds[s]`` (in no particular order); and ``sq_norms[s]`` the ``[G_s, n]`` squared norms the
        distances were built from, for the caller's finiteness check (non-finite points give NaN or inf there; the
        tree is then some spanning tree, never an out-of-range index).

    The tree is exact for the Gram-form distances rounded to float32, and deterministic: equal distances are broken
    by the smaller edge ``(u, v)`` (Prim on the host breaks them by the lowest vertex index: the two may choose
    different trees of equal total length when distances tie; the sorted lengths are the same).
    """
    n = clouds[0].shape[1]
    sq, sq_norms = _squared_distances(clouds)
    sizes = [x.shape[0] for x in clouds]
    const = _edge_constants(n, clouds[0].device)
    keys = _edge_keys(sq, const)
    groups = keys.shape[0]
    m = n
    chosen = None  # by edge index i·n + j, and a junk slot n², once a Borůvka round ran
    while m > 2 and groups * m**3 > CLOSURE_MAX_ELEMENTS:
        if chosen is None:
            chosen = torch.zeros(groups, n * n + 1, dtype=torch.bool, device=keys.device)
        keys, m = _boruvka_round(keys, chosen, const)
    if m >= 2:
        closure = keys + const.zero_diagonal[:m, :m]  # the path of length 0 costs nothing
        for _ in range(math.ceil(math.log2(m - 1)) if m > 2 else 0):
            closure = torch.maximum(closure.unsqueeze(2), closure.unsqueeze(1)).amin(3)  # B is symmetric
        if chosen is None:  # no contraction: the closure's matrix is the cloud's
            chosen = (closure == keys).view(groups, n * n) & const.upper
        else:
            in_tree = torch.where(closure == keys, keys, const.no_edge)
            chosen.scatter_(1, _edge_index(in_tree, const).view(groups, -1), True)
    chosen = chosen[:, : n * n]
    # exactly n - 1 chosen edges per cloud
    flat = torch.topk(chosen.view(torch.uint8), n - 1, dim=1, sorted=False).indices
    u, v = flat.div(n, rounding_mode="floor"), flat.remainder(n)
    return list(zip(u.split(sizes), v.split(sizes), strict=True)), sq_norms


def _edge_index(keys: torch.Tensor, const: _Constants) -> torch.Tensor:
    """The edge index ``i·n + j`` (or the junk slot ``n²``) held in the low bits of float64 keys."""
    return keys.long() & ((1 << const.shift) - 1)


def _boruvka_round(keys: torch.Tensor, chosen: torch.Tensor, const: _Constants) -> tuple[torch.Tensor, int]:
    """One Borůvka round on the ``[G, m, m]`` component key matrix: records each component's lightest edge in
    ``chosen`` and returns the contracted ``[G, ⌈m/2⌉, ⌈m/2⌉]`` key matrix."""
    groups, m, _ = keys.shape
    arange_m = const.arange_n[:m]
    lightest, target = keys.min(dim=2)
    chosen.scatter_(1, _edge_index(lightest, const), True)  # a finished cloud's rows hold "no edge": the junk slot
    parent = torch.where(lightest < const.no_edge, target, arange_m)
    mutual = (parent.gather(1, parent) == arange_m) & (arange_m < parent)
    parent = torch.where(mutual, arange_m, parent)  # two components that chose the same edge: the smaller is the root
    for _ in range(math.ceil(math.log2(m))):
        parent = parent.gather(1, parent)
    # roots keep their order; rows beyond the live components (all "no edge") become roots too, and are dropped
    size = (m + 1) // 2
    label = ((parent == arange_m).cumsum(1) - 1).gather(1, parent).clamp_(max=size)
    rows = keys.new_full((groups, size + 1, m), const.no_edge)
    rows.scatter_reduce_(1, label.unsqueeze(2).expand(groups, m, m), keys, "amin")
    both = keys.new_full((groups, size + 1, size + 1), const.no_edge)
    both.scatter_reduce_(2, label.unsqueeze(1).expand(groups, size + 1, m), rows, "amin")
    contracted = both[:, :size, :size]
    contracted.diagonal(dim1=1, dim2=2).fill_(const.no_edge)
    return contracted, size


class Boruvka(PersistenceBackend):
    """Batched Borůvka rounds in torch: any device, clouds of up to :data:`MAX_POINTS` points."""

    name = "boruvka"

    def refusal(self, n: int, device: torch.device) -> TopologyError | None:
        if n > MAX_POINTS:
            return TopologyError(
                f"The persistence backend 'boruvka' computes clouds of at most {MAX_POINTS} points, got {n}; split "
                "the cloud into groups (samples_per_class) or use backend='gudhi'."
            )
        return None

    def tree_lengths(self, clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
        edges, sq_norms = minimum_spanning_edges(clouds)
        norms = torch.cat([t.reshape(-1) for t in sq_norms]) if len(sq_norms) > 1 else sq_norms[0]
        limit = min(torch.finfo(t.dtype).max for t in sq_norms) / 4  # d² <= 4 max |x - x_0|²
        ensure(norms.amax() <= limit, non_finite)  # False for NaN too; deferred on accelerators
        return edge_lengths(clouds, edges, sort=sort)


BORUVKA = Boruvka()


def dispatch_boruvka(n: int, device: torch.device) -> PersistenceBackend | None:
    """The batched rounds for clouds of up to :data:`MAX_POINTS` points, on any device (the last link of ``"auto"``)."""
    return BORUVKA if n <= MAX_POINTS else None


__all__ = ["BORUVKA", "MAX_POINTS", "Boruvka", "dispatch_boruvka", "minimum_spanning_edges"]
