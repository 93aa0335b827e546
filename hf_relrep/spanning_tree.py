r"""Exact Euclidean minimum spanning trees of many small point clouds at once, and their differentiable edge lengths.

The 0-dimensional persistence of :mod:`hf_relrep.topology` needs, per step, the minimum spanning tree (MST) of a few
dozen clouds of 16–256 points. At that size the cost of a tensor program is its number of sequential kernels, not its
arithmetic, so the tree is found in :math:`O(\log n)` batched rounds for all clouds (and all spaces) together:

1. **Unique keys.** The squared distances of each cloud come from one batched Gram product. Each edge :math:`\{i, j\}`
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
lengths of the ``n − 1`` tree edges are then computed from the points, not from the Gram form, with a hand-written
backward: :math:`\partial w / \partial x_v = (x_v - x_u) / w = -\partial w / \partial x_u`, and 0 where :math:`w = 0`
(duplicate points).
"""

import math
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable


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


def _edge_keys(clouds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Unique keys of the edges of every cloud, ordered like (distance, i, j), ``i < j``.

    The key of edge ``{i, j}`` is the integer ``bits(d²_ij) · 2^shift + i·n + j`` held exactly in a float64: the bits
    of a non-negative float32 order like the float, so keys order edges by distance first and no two are equal.

    Returns:
        ``(keys, sq_norms)``: ``keys [G, n, n]`` float64, symmetric (diagonal: "no edge"); and per tensor of ``clouds``
        the ``[G_s, n]`` squared norms of the points relative to each cloud's first point (NaN or inf there means bad
        points).
    """
    n = clouds[0].shape[1]
    const = _edge_constants(n, clouds[0].device)
    squared, sq_norms = [], []
    for x in clouds:
        x = x.detach()
        x = x - x[:, :1]  # the Gram form loses ~eps·|x|² to cancellation: measure from inside the cloud
        gram = torch.bmm(x, x.transpose(1, 2))
        norms = gram.diagonal(dim1=1, dim2=2)
        sq = torch.add(norms.unsqueeze(2) + norms.unsqueeze(1), gram, alpha=-2.0)
        if sq.dtype != torch.float32:  # float64: scale each cloud into float32's range before rounding to it
            sq = (sq / norms.amax(1).clamp_min(torch.finfo(sq.dtype).tiny)[:, None, None]).float()
        squared.append(sq)
        sq_norms.append(norms)
    sq = torch.cat(squared) if len(squared) > 1 else squared[0]
    # rounding can make d² slightly negative (never -0.0: norms are >= +0); NaN (bad points) stays NaN, whose bits
    # still rank below "no edge": the result stays a spanning tree with valid indices, and callers check sq_norms
    sq = sq.clamp_min_(0.0)
    keys = torch.add(const.index, sq.view(torch.int32), alpha=2**const.shift)  # float64, exact integers
    keys = torch.minimum(keys, keys.transpose(1, 2))  # the Gram product need not be bitwise symmetric
    return keys, sq_norms


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

    The tree is exact for the Gram-form distances rounded to float32; equal distances are broken by the smaller edge
    ``(u, v)``, so the result is deterministic.
    """
    n = clouds[0].shape[1]
    const = _edge_constants(n, clouds[0].device)
    keys, sq_norms = _edge_keys(clouds)
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
    sizes = [x.shape[0] for x in clouds]
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


# Up to this many points per cloud, the edge differences come from one dense product with the incidence matrix (fewer
# kernels, forward and backward); above it, that product's O(n² d) work loses to index_select (measured on CPU).
INCIDENCE_MAX_POINTS = 32


def _differences(u: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """``x[g, v] - x[g, u]`` as ``[G, k, d]``, and what :func:`_pull_back` needs to return a gradient to ``x``."""
    groups, n, d = x.shape
    if n <= INCIDENCE_MAX_POINTS:
        incidence = x.new_zeros(groups, u.shape[1], n)  # signed edge-vertex incidence: +1 at v, -1 at u
        incidence.scatter_(2, v.unsqueeze(-1), 1.0).scatter_(2, u.unsqueeze(-1), -1.0)
        return torch.bmm(incidence, x), (incidence, None, None)
    offset = (torch.arange(groups, device=x.device) * n).unsqueeze(1)
    flat_u, flat_v = (u + offset).view(-1), (v + offset).view(-1)
    flat = x.reshape(groups * n, d)
    return (flat.index_select(0, flat_v) - flat.index_select(0, flat_u)).view(groups, -1, d), (None, flat_u, flat_v)


def _pull_back(scale: torch.Tensor, difference: torch.Tensor, route: tuple, shape: torch.Size) -> torch.Tensor:
    """Gradient to ``x`` of the lengths when ``d loss / d w = scale · w`` per edge, i.e. ``scale · (x_v − x_u)`` at
    ``v`` and its negative at ``u``."""
    incidence, flat_u, flat_v = route
    if incidence is not None:  # the factor scales the small incidence matrix, not the [G, k, d] differences
        return torch.bmm((incidence * scale.unsqueeze(-1)).transpose(1, 2), difference)
    groups, n, d = shape
    grad_difference = (difference * scale.unsqueeze(-1)).view(-1, d)
    grad_x = difference.new_zeros(groups * n, d)
    grad_x.index_add_(0, flat_v, grad_difference).index_add_(0, flat_u, grad_difference, alpha=-1.0)
    return grad_x.view(groups, n, d)


class _EdgeLengths(torch.autograd.Function):
    """Lengths ``w = ||x[g, v] - x[g, u]||`` of the edges ``u, v [G, k]`` of ``x [G, n, d]``, for several spaces.

    Inputs: ``sort``, then ``(u, v, x)`` triples flattened. Computed from the points, not from a
    ``|x|² + |y|² − 2xy`` matrix: exact for close points. The backward is the chain rule written out in a few kernels:
    ``dw/dx_v = (x_v - x_u) / w = -dw/dx_u``, 0 where ``w = 0``. First-order gradients only.
    """

    @staticmethod
    def forward(ctx, sort: bool, *triples: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, saved, ctx.shapes = [], [], []
        for s in range(0, len(triples), 3):
            u, v, x = triples[s : s + 3]
            difference, route = _differences(u, v, x)
            lengths = torch.linalg.vector_norm(difference, dim=-1)
            order = None
            if sort:
                values, order = lengths.sort(dim=-1)
                outputs.append(values)
            else:
                outputs.append(lengths)
            saved += [difference, lengths, order, *route]
            ctx.shapes.append(x.shape)
        ctx.save_for_backward(*saved)  # (not ctx attributes: an output kept there would make a reference cycle)
        return tuple(outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        result: list[torch.Tensor | None] = [None]
        for s, (grad, shape) in enumerate(zip(grads, ctx.shapes, strict=True)):
            result += [None, None]
            if not ctx.needs_input_grad[1 + 3 * s + 2]:
                result.append(None)
                continue
            difference, lengths, order, *route = saved[6 * s : 6 * s + 6]
            if order is not None:  # lengths are sorted: route each gradient back to its edge
                grad = torch.empty_like(grad).scatter_(1, order, grad)
            scale = torch.where(lengths > 0, grad / lengths, 0.0)  # grad / w, and 0 at w = 0
            result.append(_pull_back(scale, difference, tuple(route), shape))
        return tuple(result)


class _DeviationLoss(torch.autograd.Function):
    """``R_s = Σ_{g valid} Σ_k |w_gk − β_s|`` of the edge lengths of each space, one autograd node for all spaces.

    Inputs: ``betas`` (one float per space), ``valid`` (``[G]`` bool mask of the rows that count, or ``None``), then
    ``(u, v, x)`` triples. Outputs: the scalar ``R_s`` of each space, then the detached ``[G, k]`` lengths of each.
    Backward: ``dR/dw = sign(w − β)``, pulled back through the lengths as in :class:`_EdgeLengths`.
    """

    @staticmethod
    def forward(ctx, betas: tuple[float, ...], valid: torch.Tensor | None, *triples: torch.Tensor):
        losses, lengths_out, saved, ctx.shapes = [], [], [], []
        for beta, s in zip(betas, range(0, len(triples), 3), strict=True):
            u, v, x = triples[s : s + 3]
            difference, route = _differences(u, v, x)
            lengths = torch.linalg.vector_norm(difference, dim=-1)
            deviation = lengths - beta
            sign = deviation.sign()
            if valid is not None:
                sign = sign * valid.unsqueeze(1)
                losses.append((deviation.abs() * valid.unsqueeze(1)).sum())
            else:
                losses.append(deviation.abs().sum())
            lengths_out.append(lengths)
            saved += [difference, lengths, sign, *route]
            ctx.shapes.append(x.shape)
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(*lengths_out)
        return (*losses, *lengths_out)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        result: list[torch.Tensor | None] = [None, None]
        for s, (grad, shape) in enumerate(zip(grads[: len(ctx.shapes)], ctx.shapes, strict=True)):  # then lengths
            result += [None, None]
            if not ctx.needs_input_grad[2 + 3 * s + 2]:
                result.append(None)
                continue
            difference, lengths, sign, *route = saved[6 * s : 6 * s + 6]
            scale = torch.where(lengths > 0, sign / lengths, 0.0) * grad  # sign(w - β) / w, and 0 at w = 0
            result.append(_pull_back(scale, difference, tuple(route), shape))
        return tuple(result)


def deviation_losses(
    clouds: Sequence[torch.Tensor],
    edges: Sequence[tuple[torch.Tensor, torch.Tensor]],
    betas: Sequence[float],
    valid: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""Per space, :math:`R = \sum_{g} \sum_k |w_{gk} - \beta|` over the lengths :math:`w` of the edges ``(u, v)``.

    The fused form of ``(edge_lengths(...) - beta).abs().sum()`` that a training step needs: one autograd node for
    every space, no sort.

    Args:
        clouds: tensors ``[G, n_s, d_s]`` (the same ``G`` rows in each).
        edges: one ``(u, v)`` pair of ``[G, k_s]`` long tensors per tensor of ``clouds``.
        betas: target length per space.
        valid: ``[G]`` mask of the rows that count (the others add nothing and get no gradient), or ``None``.

    Returns:
        ``(losses, lengths)``: the scalar :math:`R` of each space, with gradient, and its detached ``[G, k_s]``
        lengths in edge order.
    """
    triples = [t for (u, v), x in zip(edges, clouds, strict=True) for t in (u, v, x)]
    outputs = _DeviationLoss.apply(tuple(float(b) for b in betas), valid, *triples)
    return list(outputs[: len(clouds)]), list(outputs[len(clouds) :])


def edge_lengths(
    clouds: Sequence[torch.Tensor], edges: Sequence[tuple[torch.Tensor, torch.Tensor]], *, sort: bool = True
) -> list[torch.Tensor]:
    r"""Differentiable lengths :math:`\lVert x_v - x_u \rVert_2` of the edges ``(u, v)`` of each batch of clouds.

    Args:
        clouds: tensors ``[G_s, n_s, d_s]``.
        edges: one ``(u, v)`` pair of ``[G_s, k_s]`` long tensors per tensor of ``clouds``.
        sort: sort the lengths of each cloud ascending (gradients follow the values).

    Returns:
        One ``[G_s, k_s]`` tensor per cloud batch. The gradient is :math:`(x_v - x_u) / w` at ``v`` and its negative at
        ``u``, and 0 on zero-length edges (duplicate points) rather than NaN. First-order gradients only.
    """
    triples = [t for (u, v), x in zip(edges, clouds, strict=True) for t in (u, v, x)]
    return list(_EdgeLengths.apply(sort, *triples))
