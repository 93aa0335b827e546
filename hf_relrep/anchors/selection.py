"""Anchor selection: which k points of a candidate pool become the anchors.

`select_anchors` returns *indices* into the pool, so that the parallel counterparts of the chosen anchors (the same
sentences translated, the same images seen by another model) are taken by the same index from the other pool.

Strategies live in a registry, `ANCHOR_STRATEGIES` (name → callable); adding one is one decorated function
(`register_anchor_strategy`, which refuses a taken name):

- ``"random"``: a uniform sample without replacement.
- ``"stratified"``: a uniform sample within each class, class sizes proportional to the label counts, every class
  at least once.
- ``"kmeans"``: the medoids of a k-means clustering (k-means++ seeding, Lloyd iterations): for each centroid the
  real candidate nearest to it, all distinct.
- ``"fps"``: farthest-point sampling: each anchor is the candidate farthest from the anchors chosen so far.

Every strategy is deterministic for a given seed. ``"random"`` and ``"fps"`` return anchors in selection order, so
the first k' of a selection of k are themselves a selection of k' (nested anchor sets for sweeps).
"""

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from ..errors import AnchorError, ConfigurationError, DataError, NonFiniteError
from ..utils.registry import Registry


AnchorStrategy = Callable[..., torch.Tensor]
ANCHOR_STRATEGIES: Registry[AnchorStrategy] = Registry("anchor strategy")

# k-means: Lloyd iterations run on a random subsample of max(this many points per cluster, the floor) candidates, the
# medoids are then taken from the whole pool; k-means++ seeding runs on a smaller subsample, sized likewise.
KMEANS_POINTS_PER_CLUSTER, KMEANS_MIN_POINTS = 40, 20_000
KMEANS_SEEDING_POINTS_PER_CLUSTER, KMEANS_MIN_SEEDING_POINTS = 4, 2_000
# k-means++ precomputes all pairwise distances of its subsample up to this many points (64 MiB in float32).
KMEANS_SEEDING_PAIRWISE_MAX = 4096
KMEANS_MAX_ITERATIONS = 25
# Lloyd stops when the inertia falls by less than this fraction between two iterations.
KMEANS_TOLERANCE = 1e-4
# Rows of the candidate pool per distance block: bounds the memory of a [rows, k] distance matrix.
DISTANCE_CHUNK_ROWS = 8192
# Nearest candidates remembered per centroid when picking distinct medoids.
MEDOID_SHORTLIST = 8


def register_anchor_strategy(name: str) -> Callable[[AnchorStrategy], AnchorStrategy]:
    """A decorator that adds a strategy to `ANCHOR_STRATEGIES` under `name`.

    The callable receives ``(candidates [n, d] float tensor, k, *, generator, labels)`` (``labels`` a ``[n]`` long
    tensor of class ids, or ``None``) and returns a ``[k]`` long tensor of distinct indices.

    Raises:
        ConfigurationError: `name` is taken.
    """
    return ANCHOR_STRATEGIES.register(name)


def squared_distances(
    points: torch.Tensor,
    centres: torch.Tensor,
    centre_norms: torch.Tensor | None = None,
    point_norms: torch.Tensor | None = None,
) -> torch.Tensor:
    """``D_ij = ‖p_i‖² − 2⟨p_i, c_j⟩ + ‖c_j‖²`` (one matmul; clamped at 0 against rounding); norms reused if given."""
    if centre_norms is None:
        centre_norms = centres.square().sum(1)
    if point_norms is None:
        point_norms = points.square().sum(1)
    products = torch.addmm(centre_norms, points, centres.T, alpha=-2.0)
    return products.add_(point_norms.unsqueeze(1)).clamp_(min=0.0)


@register_anchor_strategy("random")
def random_anchors(candidates: torch.Tensor, k: int, *, generator: torch.Generator, labels=None) -> torch.Tensor:
    """k indices drawn uniformly without replacement (``randperm(n)[:k]``)."""
    return torch.randperm(candidates.shape[0], generator=generator)[:k]


def stratified_quota(counts: torch.Tensor, k: int) -> torch.Tensor:
    """Anchors per class: ``q_c = k·n_c/n`` rounded by largest remainder, at least 1 and at most ``n_c`` per class."""
    ideal = k * counts.double() / counts.sum()
    quota = torch.minimum(ideal.floor().long().clamp(min=1), counts)
    while int(quota.sum()) < k:  # hand out the rest to the classes furthest below their share that still have room
        deficit = torch.where(quota < counts, ideal - quota, torch.tensor(-torch.inf, dtype=ideal.dtype))
        quota[int(deficit.argmax())] += 1
    while int(quota.sum()) > k:  # the "at least once" rule overshot: take from the classes furthest above their share
        excess = torch.where(quota > 1, quota - ideal, torch.tensor(-torch.inf, dtype=ideal.dtype))
        quota[int(excess.argmax())] -= 1
    return quota


@register_anchor_strategy("stratified")
def stratified_anchors(candidates: torch.Tensor, k: int, *, generator: torch.Generator, labels=None) -> torch.Tensor:
    """A uniform sample inside each class, ``stratified_quota`` anchors from class c; indices in ascending order."""
    if labels is None:
        raise ConfigurationError("strategy='stratified' needs labels=: one class label per candidate.")
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if k < len(classes):
        raise AnchorError(
            f"strategy='stratified' puts every class among the anchors, but k={k} is below the {len(classes)} classes"
            f". Ask for at least {len(classes)} anchors, or use strategy='random' or 'kmeans'."
        )
    quota = stratified_quota(counts, k)
    chosen = []
    for class_index, take in enumerate(quota.tolist()):
        members = torch.nonzero(inverse == class_index).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(chosen).sort().values


@register_anchor_strategy("fps")
def farthest_point_anchors(candidates: torch.Tensor, k: int, *, generator: torch.Generator, labels=None):
    """Farthest-point sampling: a random first anchor, then ``a_{t+1} = argmax_i min_{s≤t} ‖x_i − a_s‖``.

    Chosen points are never chosen again, so the indices stay distinct even with duplicated candidates.
    """
    n = candidates.shape[0]
    points = candidates
    norms = points.square().sum(1)
    chosen = torch.empty(k, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=generator))
    nearest = torch.full((n,), torch.inf, dtype=points.dtype, device=points.device)
    for step in range(1, k):
        last = int(chosen[step - 1])
        distance = torch.addmv(norms, points, points[last], alpha=-2.0).add_(norms[last])  # ‖x‖² − 2⟨x, a⟩ + ‖a‖²
        torch.minimum(nearest, distance, out=nearest)
        nearest[last] = -torch.inf  # below every distance: never picked again
        chosen[step] = int(nearest.argmax())
    return chosen


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run a loop of many tiny CPU ops on one intra-op thread, then restore the thread count.

    A thread pool's start/stop per op costs more than the op itself; on a busy machine, 2 threads made the
    k-means++ loop 14× slower than 1 (as scikit-learn does with threadpoolctl around its own loops).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007; the variant scikit-learn uses).

    Each new centre is the best of ``2 + ⌊ln k⌋`` candidates drawn with probability ∝ ``D(x)²`` (the squared
    distance from x to the nearest centre so far): the one that lowers ``Σ_x D(x)²`` most. Up to
    `KMEANS_SEEDING_PAIRWISE_MAX` points, all pairwise distances are computed once (one large matmul instead of one
    small one per centre), and the loop runs on one CPU thread (`one_cpu_thread`).
    """
    n = points.shape[0]
    trials = 2 + int(math.log(k))
    norms = points.square().sum(1)
    if n <= KMEANS_SEEDING_PAIRWISE_MAX:
        pairwise = squared_distances(points, points, norms, norms)

        def distances_to(indices: torch.Tensor) -> torch.Tensor:
            return pairwise[indices]

    else:

        def distances_to(indices: torch.Tensor) -> torch.Tensor:
            return squared_distances(points[indices], points, norms, norms[indices])

    chosen = torch.empty(k, dtype=torch.long, device=points.device)
    chosen[0] = int(torch.randint(n, (1,), generator=generator))
    nearest = distances_to(chosen[:1])[0]
    with one_cpu_thread():
        for step in range(1, k):
            weights = nearest.cpu().double()
            if float(weights.sum()) > 0.0:
                candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)
            else:  # every point sits on a centre already (duplicates): any point will do
                candidates = torch.randint(n, (trials,), generator=generator)
            candidates = candidates.to(points.device)
            potential = torch.minimum(distances_to(candidates), nearest)  # [trials, n]
            best = int(potential.sum(1).argmin())
            chosen[step] = candidates[best]
            nearest = potential[best]
    return points[chosen]


def lloyd(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Lloyd iterations: assign each point to its nearest centre, move each centre to the mean of its points.

    Minimises the inertia ``Σ_i min_j ‖x_i − c_j‖²``. A centre that loses all its points moves to the point farthest
    from its nearest centre. Stops after `KMEANS_MAX_ITERATIONS` or when the inertia falls by less than
    `KMEANS_TOLERANCE` (relative).
    """
    k = centres.shape[0]
    point_norms = points.square().sum(1)
    previous = torch.inf
    for _ in range(KMEANS_MAX_ITERATIONS):
        centre_norms = centres.square().sum(1)
        assignment = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
        nearest = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
        for start in range(0, points.shape[0], DISTANCE_CHUNK_ROWS):
            rows = slice(start, start + DISTANCE_CHUNK_ROWS)
            block = squared_distances(points[rows], centres, centre_norms, point_norms[rows])
            torch.min(block, dim=1, out=(nearest[rows], assignment[rows]))
        inertia = float(nearest.sum())
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        sizes = torch.bincount(assignment, minlength=k)
        empty = torch.nonzero(sizes == 0).flatten()
        centres = sums / sizes.clamp(min=1).unsqueeze(1).to(points.dtype)
        if len(empty):
            centres[empty] = points[nearest.topk(len(empty)).indices]
        if previous - inertia <= KMEANS_TOLERANCE * previous:
            break
        previous = inertia
    return centres


def distinct_medoids(candidates: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """For each centre the nearest candidate not already taken by a centre closer to its own nearest candidate.

    One pass over the pool keeps each centre's `MEDOID_SHORTLIST` nearest candidates (ranked by
    ``‖x_i‖² − 2⟨x_i, c_j⟩``, the squared distance less the constant ``‖c_j‖²``); centres then pick greedily, best
    match first. A centre whose shortlist is used up (heavily duplicated data) searches the whole pool.
    """
    k = centres.shape[0]
    shortlist = min(MEDOID_SHORTLIST, candidates.shape[0])
    best = torch.empty((k, 0), dtype=candidates.dtype, device=candidates.device)
    best_index = torch.empty((k, 0), dtype=torch.long, device=candidates.device)
    for start in range(0, candidates.shape[0], DISTANCE_CHUNK_ROWS):
        block = candidates[start : start + DISTANCE_CHUNK_ROWS]
        scores = torch.addmm(block.square().sum(1).unsqueeze(0), centres, block.T, alpha=-2.0)  # [k, rows]
        values, indices = scores.topk(min(shortlist, block.shape[0]), dim=1, largest=False)
        merged = torch.cat([best, values], dim=1)
        merged_index = torch.cat([best_index, indices + start], dim=1)
        keep = merged.topk(min(shortlist, merged.shape[1]), dim=1, largest=False).indices
        best, best_index = merged.gather(1, keep), merged_index.gather(1, keep)
    margin = (best[:, 0] + centres.square().sum(1)).cpu()  # the squared distance to the nearest candidate
    best_index = best_index.cpu()
    taken: set[int] = set()
    medoids = torch.empty(k, dtype=torch.long)
    for centre in torch.argsort(margin, stable=True).tolist():
        free = [index for index in best_index[centre].tolist() if index not in taken]
        if free:
            choice = free[0]
        else:
            distance = squared_distances(candidates, centres[centre : centre + 1]).flatten().cpu()
            distance[list(taken)] = torch.inf
            choice = int(distance.argmin())
        taken.add(choice)
        medoids[centre] = choice
    return medoids


@register_anchor_strategy("kmeans")
def kmeans_anchors(candidates: torch.Tensor, k: int, *, generator: torch.Generator, labels=None) -> torch.Tensor:
    """Medoids of k-means: k-means++ seeding and Lloyd iterations on a subsample, then the nearest real points.

    Lloyd runs on ``max(KMEANS_POINTS_PER_CLUSTER · k, KMEANS_MIN_POINTS)`` random candidates and k-means++ on
    ``max(KMEANS_SEEDING_POINTS_PER_CLUSTER · k, KMEANS_MIN_SEEDING_POINTS)`` of them (all, for a smaller pool); the
    medoids are searched in the whole pool. Indices follow the centres' order.
    """
    n = candidates.shape[0]
    sample_size = max(KMEANS_POINTS_PER_CLUSTER * k, KMEANS_MIN_POINTS)
    sample = torch.randperm(n, generator=generator)[:sample_size].to(candidates.device)
    points = candidates[sample]
    seeding = points[: max(KMEANS_SEEDING_POINTS_PER_CLUSTER * k, KMEANS_MIN_SEEDING_POINTS)]  # already shuffled
    centres = lloyd(points, kmeans_plus_plus(seeding, k, generator))
    return distinct_medoids(candidates, centres)


def candidate_latents(candidates, embed: Callable[[Sequence[str]], torch.Tensor] | None) -> torch.Tensor:
    """The ``[n, d]`` latents of the pool: the tensor itself, or ``embed(texts)`` for a sequence of texts."""
    if isinstance(candidates, torch.Tensor):
        if embed is not None:
            raise ConfigurationError("embed= is for a pool of texts; candidates are already latents.")
        return candidates
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise AnchorError(
            f"candidates must be a [n, dim] tensor of latents or a list of texts, got {type(candidates).__name__}."
        )
    if embed is None:
        raise ConfigurationError(
            "candidates are texts: pass embed=, a callable that maps a list of texts to a [n, dim] tensor, e.g. "
            "functools.partial(hf_relrep.zoo.embed_texts, model, tokenizer)."
        )
    latents = embed(list(candidates))
    if not isinstance(latents, torch.Tensor) or latents.shape[:1] != (len(candidates),):
        raise AnchorError(f"embed= must return a [{len(candidates)}, dim] tensor, one row per text.")
    return latents


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in `tensor` (``aminmax`` propagates NaN; faster than ``isfinite(t).all()`` on a big pool)."""
    low, high = tensor.aminmax()
    return bool(torch.isfinite(low) & torch.isfinite(high))


def label_ids(labels, n: int) -> torch.Tensor:
    """Labels (a tensor or any sequence of hashable labels) as ``[n]`` class ids."""
    if isinstance(labels, torch.Tensor):
        ids = labels.flatten() if labels.ndim <= 1 else labels
        if ids.ndim != 1:
            raise DataError(f"labels must be one label per candidate, got shape {tuple(labels.shape)}.")
    else:
        values = list(labels)
        lookup = {value: index for index, value in enumerate(dict.fromkeys(values))}
        ids = torch.tensor([lookup[value] for value in values], dtype=torch.long)
    if ids.shape[0] != n:
        raise DataError(f"Got {ids.shape[0]} labels for {n} candidates: give exactly one label per candidate.")
    return ids.cpu()


def select_anchors(
    candidates: torch.Tensor | Sequence[str],
    k: int,
    *,
    strategy: str = "random",
    labels: torch.Tensor | Sequence | None = None,
    seed: int = 0,
    embed: Callable[[Sequence[str]], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Choose k anchors among candidates; returns their indices.

    - ``"random"``: ``randperm(n)[:k]``.
    - ``"stratified"``: ``q_c ≈ k·n_c/n`` anchors drawn uniformly from class c (largest-remainder rounding, every
      class at least once).
    - ``"kmeans"``: ``argmin_C Σ_i min_j ‖x_i − c_j‖²`` by k-means++ and Lloyd, then medoid ``m_j = argmin_i
      ‖x_i − c_j‖`` (distinct).
    - ``"fps"``: ``a_{t+1} = argmax_i min_{s≤t} ‖x_i − a_s‖`` from a random first anchor.

    Args:
        candidates: ``[n, d]`` latents, or a list of n texts together with `embed`.
        k: the number of anchors, 1 ≤ k ≤ n.
        strategy: a name in `ANCHOR_STRATEGIES`.
        labels: one class label per candidate (tensor or sequence); used by ``"stratified"`` only.
        seed: the same seed gives the same anchors.
        embed: for a list of texts, a callable mapping texts to their ``[n, d]`` latents.

    Returns:
        ``[k]`` long tensor of distinct indices into `candidates` (on the CPU).

    Raises:
        AnchorError: k outside ``[1, n]``, candidates not ``[n, d]``, stratified with fewer anchors than classes.
        ConfigurationError: unknown strategy; labels missing for (or given to a strategy other than) stratified.
        DataError: not one label per candidate.
        NonFiniteError: NaN or infinite latents.

    Example:

    ```python
    >>> import torch
    >>> from hf_relrep import select_anchors
    >>> pool = torch.randn(1000, 32)
    >>> select_anchors(pool, 16, strategy="kmeans", seed=0).shape
    torch.Size([16])
    ```
    """
    ANCHOR_STRATEGIES.check(strategy)
    if labels is not None and strategy != "stratified":
        raise ConfigurationError(f"labels are read by strategy='stratified' only; drop them for {strategy!r}.")
    latents = candidate_latents(candidates, embed)
    if latents.ndim != 2:
        raise AnchorError(f"candidates must be [n, dim] latents, got shape {tuple(latents.shape)}.")
    n = latents.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise AnchorError(f"k must be an integer between 1 and the {n} candidates, got {k!r}.")
    if not latents.is_floating_point():
        latents = latents.float()
    if not all_finite(latents):
        raise NonFiniteError("The candidate latents contain NaN or infinite values; drop or fix those rows first.")
    ids = label_ids(labels, n) if labels is not None else None
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        chosen = ANCHOR_STRATEGIES[strategy](latents.detach(), k, generator=generator, labels=ids)
    return chosen.cpu().long()


__all__ = ["ANCHOR_STRATEGIES", "register_anchor_strategy", "select_anchors"]
