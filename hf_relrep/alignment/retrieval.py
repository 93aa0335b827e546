"""Cosine retrieval between two sets of embeddings, and the held-out retrieval quality of an alignment.

- `search`: top-k of a corpus for each query by cosine similarity, brute force, in chunks of queries and of corpus
  rows, so that memory stays bounded for any corpus size (a NumPy memmap is read one chunk at a time); an optional
  per-chunk transform re-projects stored corpus vectors on the fly.
- `partner_ranks`: the rank of each query's partner among a gallery (row i of queries pairs with row i of the
  gallery), the quantity behind recall@k and MRR.
- `cross_validated_quality`: recall@1, recall@10 and MRR of retrieving held-out anchors across two models, K-fold
  cross-validated on the anchors, as a `RetrievalQuality`; `check_quality` warns with `AlignmentQualityWarning` when
  the result cannot be told apart from chance.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import AnchorError, ConfigurationError
from ..relative.normalizations import check_finite_latents
from ..relative.similarities import unit_rows


Array = torch.Tensor | np.ndarray

#: Standard errors above chance that a recall@1 must reach for `check_quality` to stay silent.
CHANCE_MARGIN = 3.0


class AlignmentQualityWarning(UserWarning):
    """An alignment's held-out retrieval quality is near chance: its mapped vectors will not find their partners."""


class SearchResult(NamedTuple):
    """Top-k neighbours, best first: ``scores [n, k]`` (cosine similarities) and ``indices [n, k]`` (corpus rows)."""

    scores: Array
    indices: Array


def as_tensor(embeddings: Array, name: str) -> torch.Tensor:
    """`embeddings` as a 2-D floating tensor (a NumPy array is wrapped without a copy where it can be).

    Raises:
        AnchorError: not 2-D.
        ConfigurationError: neither a tensor nor an array, or not a floating type.
    """
    if isinstance(embeddings, np.ndarray):
        embeddings = torch.from_numpy(np.asarray(embeddings))
    if not isinstance(embeddings, torch.Tensor):
        raise ConfigurationError(f"{name} must be a torch tensor or a NumPy array, got {type(embeddings).__name__}.")
    if not embeddings.is_floating_point():
        raise ConfigurationError(f"{name} must hold floating-point embeddings, got dtype {embeddings.dtype}.")
    if embeddings.ndim != 2:
        raise AnchorError(f"{name} must be 2-D [rows, dim], got shape {tuple(embeddings.shape)}.")
    return embeddings


def search(
    queries: Array,
    corpus: Array,
    k: int = 10,
    *,
    corpus_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    query_batch_size: int = 1024,
    corpus_chunk_size: int = 16384,
) -> SearchResult:
    """The `k` corpus rows most cosine-similar to each query, best first, by exact brute force in bounded memory.

    The corpus is read `corpus_chunk_size` rows at a time (and transformed, if asked, once per chunk) and scored
    against `query_batch_size` queries at a time; each block's top-k is merged into a running top-k per query, so
    memory is ``O(n · k + query_batch_size · corpus_chunk_size)`` whatever the corpus size, and a NumPy memmap corpus
    is read chunk by chunk. Ties keep the lower corpus index first. Computed on
    the queries' device, in float32 (float64 if an input is float64).

    Args:
        queries: ``[n, d]`` query embeddings, already in the corpus's space.
        corpus: ``[N, d']`` corpus embeddings (tensor, array or memmap).
        k: neighbours per query; capped at N.
        corpus_transform: applied to each corpus chunk before the cosines (e.g. an alignment's `transform_corpus`),
            so re-projected corpus vectors are never all held in memory; its output must have the queries' size.
        query_batch_size: queries per block.
        corpus_chunk_size: corpus rows per block.

    Returns:
        A `SearchResult` ``(scores [n, k], indices [n, k])``: NumPy arrays if `queries` is one, else tensors.

    Raises:
        AnchorError: the queries' size differs from the (transformed) corpus's.
        ConfigurationError: k, a batch size or a chunk size below 1.
        NonFiniteError: NaN or infinite embeddings.
    """
    for name, value in (("k", k), ("query_batch_size", query_batch_size), ("corpus_chunk_size", corpus_chunk_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")
    as_numpy = isinstance(queries, np.ndarray)
    queries = as_tensor(queries, "The queries")
    check_finite_latents("The queries", queries)
    if not isinstance(corpus, (np.ndarray, torch.Tensor)) or corpus.ndim != 2:
        raise AnchorError(f"The corpus must be a 2-D tensor or array [rows, dim], got {type(corpus).__name__}.")
    size = corpus.shape[0]
    k = min(k, size)
    wide = corpus.dtype == (np.float64 if isinstance(corpus, np.ndarray) else torch.float64)
    dtype = torch.float64 if wide or queries.dtype == torch.float64 else torch.float32
    device, count = queries.device, queries.shape[0]
    units = unit_rows(queries.to(dtype), 1e-12)
    scores = torch.full((count, 0), -math.inf, dtype=dtype, device=device)
    indices = torch.zeros((count, 0), dtype=torch.long, device=device)
    for offset in range(0, size, corpus_chunk_size):  # each chunk is read and transformed once
        rows = _corpus_chunk(corpus, offset, offset + corpus_chunk_size, corpus_transform, device, dtype)
        if rows.shape[1] != units.shape[1]:
            raise AnchorError(
                f"The queries are {units.shape[1]}-dimensional but the corpus is {rows.shape[1]}-dimensional: map the "
                "queries into the corpus's space first (EmbeddingAlignment.map_queries)."
            )
        positions = torch.arange(offset, offset + rows.shape[0], device=device)
        merged_scores, merged_indices = [], []
        for start in range(0, count, query_batch_size):
            stop = start + query_batch_size
            block = torch.cat([scores[start:stop], units[start:stop] @ rows.T], dim=1)
            block_indices = torch.cat([indices[start:stop], positions.expand(block.shape[0], -1)], dim=1)
            order = _stable_top(block, k)  # the running top-k first: ties keep the lower corpus index
            merged_scores.append(block.gather(1, order))
            merged_indices.append(block_indices.gather(1, order))
        if count:
            scores, indices = torch.cat(merged_scores), torch.cat(merged_indices)
    if count == 0:
        scores, indices = scores.new_empty((0, k)), indices.new_empty((0, k))
    if as_numpy:
        return SearchResult(scores.cpu().numpy(), indices.cpu().numpy())
    return SearchResult(scores, indices)


def _stable_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Column positions of the k largest scores per row, ties broken by position (lower first)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def _corpus_chunk(corpus, start, stop, transform, device, dtype) -> torch.Tensor:
    rows = corpus[start:stop]
    rows = torch.from_numpy(np.ascontiguousarray(rows)) if isinstance(rows, np.ndarray) else rows
    if not rows.is_floating_point():
        raise ConfigurationError(f"The corpus must hold floating-point embeddings, got dtype {rows.dtype}.")
    rows = rows.to(device)
    check_finite_latents("The corpus embeddings", rows)
    if transform is not None:
        rows = transform(rows)
    return unit_rows(rows.to(dtype), 1e-12)


def partner_ranks(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """1-based rank of ``gallery[i]`` among all gallery rows by cosine similarity to ``queries[i]``; the gallery may
    hold more rows than there are queries (extra distractors).

    Ties count against the partner (a rank is 1 + the number of rows scoring at least as high, other than itself), so
    a constant map does not look perfect.
    """
    queries, gallery = unit_rows(queries.double(), 1e-12), unit_rows(gallery.double(), 1e-12)
    scores = queries @ gallery.T
    partner = scores.diagonal().unsqueeze(1)
    beaten = (scores >= partner).sum(1) - 1
    return beaten + 1


@dataclass(frozen=True)
class RetrievalQuality:
    """Held-out quality of retrieving each anchor's partner across two models.

    Attributes:
        recall_at_1: share of held-out source anchors whose partner ranks first among the candidates.
        recall_at_10: share whose partner ranks in the top 10 (1.0 by construction when candidates ≤ 10).
        mrr: mean reciprocal rank of the partner.
        chance_recall_at_1: the recall@1 of a random map, the mean of 1 / candidates.
        num_queries: held-out anchors scored (every anchor, once).
        candidates: mean number of candidates per query (the held-out target anchors of its fold, plus the
            distractors when given).
        folds: K.
    """

    recall_at_1: float
    recall_at_10: float
    mrr: float
    chance_recall_at_1: float
    num_queries: int
    candidates: float
    folds: int

    @property
    def near_chance(self) -> bool:
        """recall@1 is less than `CHANCE_MARGIN` standard errors above chance: it cannot be told apart from chance."""
        p = self.chance_recall_at_1
        return self.recall_at_1 < p + CHANCE_MARGIN * math.sqrt(p * (1 - p) / max(self.num_queries, 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RetrievalQuality":
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})

    def __str__(self) -> str:
        return (
            f"recall@1 {100 * self.recall_at_1:.1f}, recall@10 {100 * self.recall_at_10:.1f}, MRR "
            f"{100 * self.mrr:.1f} (×100; {self.folds}-fold held-out anchors, ~{self.candidates:.0f} candidates "
            f"each, chance recall@1 {100 * self.chance_recall_at_1:.1f})"
        )


Mapper = Callable[[torch.Tensor], torch.Tensor]


def fold_assignment(count: int, folds: int, seed: int) -> list[torch.Tensor]:
    """`folds` disjoint index sets covering ``range(count)``, sizes differing by at most one, shuffled by `seed`."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return [order[fold::folds].sort().values for fold in range(folds)]


def cross_validated_quality(
    fit: Callable[[torch.Tensor, torch.Tensor], tuple[Mapper, Mapper]],
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    folds: int = 10,
    seed: int = 0,
    distractors: torch.Tensor | None = None,
) -> RetrievalQuality:
    """K-fold held-out retrieval quality of an alignment fitted by `fit` on parallel anchors.

    For each fold, `fit` sees the other folds' anchors and returns ``(map_queries, transform_corpus)``; each held-out
    source anchor, mapped, is ranked against the fold's held-out target anchors, transformed (its partner and
    ~k/K − 1 distractors, none of which the fit saw), plus the `distractors` when given. Every anchor is a query
    exactly once.

    Without distractors the gallery is the held-out fold, not a whole corpus: with ~k/K candidates the task is easier
    than a search in a larger corpus of the same domain (the estimate is optimistic), while fitting on (K − 1)/K of the
    anchors makes it harder than the final fit. Passing a sample of the corpus as `distractors` (target-model
    embeddings of texts that are not anchors) makes the gallery as hard as a search among that many documents.

    Args:
        fit: ``(source_anchors, target_anchors) → (map_queries, transform_corpus)``.
        source: ``[k, d_s]`` anchors in the query model's space.
        target: ``[k, d_t]`` the same anchors in the corpus model's space.
        folds: K ≥ 2; every fold must hold at least 2 anchors.
        seed: shuffles the anchors into folds.
        distractors: ``[D, d_t]`` unpaired corpus-model embeddings added to every fold's gallery, or None.

    Raises:
        AnchorError: fewer than 2 anchors per fold.
        ConfigurationError: K < 2.
    """
    count = source.shape[0]
    if not isinstance(folds, int) or folds < 2:
        raise ConfigurationError(f"Cross-validation needs folds ≥ 2, got {folds!r}.")
    if count < 2 * folds:
        raise AnchorError(
            f"{folds}-fold cross-validation of the held-out quality needs at least {2 * folds} anchors (2 per fold), "
            f"got {count}; pass more anchors or fewer folds."
        )
    ranks, sizes = [], []
    for held_out in fold_assignment(count, folds, seed):
        keep = torch.ones(count, dtype=torch.bool)
        keep[held_out] = False
        map_queries, transform_corpus = fit(source[keep], target[keep])
        gallery = transform_corpus(target[held_out])
        if distractors is not None:
            gallery = torch.cat([gallery, transform_corpus(distractors).to(gallery.dtype)])
        ranks.append(partner_ranks(map_queries(source[held_out]), gallery))
        sizes.extend([gallery.shape[0]] * len(held_out))
    rank = torch.cat(ranks).double()
    return RetrievalQuality(
        recall_at_1=float((rank <= 1).double().mean()),
        recall_at_10=float((rank <= 10).double().mean()),
        mrr=float((1.0 / rank).mean()),
        chance_recall_at_1=float(np.mean([1.0 / size for size in sizes])),
        num_queries=count,
        candidates=float(np.mean(sizes)),
        folds=folds,
    )


def check_quality(quality: RetrievalQuality, *, stacklevel: int = 2) -> None:
    """Warn with `AlignmentQualityWarning` when the held-out recall@1 cannot be told apart from chance."""
    if quality.near_chance:
        warnings.warn(
            f"The alignment's held-out retrieval is near chance ({quality}): the two models' anchors do not line up "
            "(anchors embedded in another order or by another model?), or there are too few anchors for the method. "
            "Searching with it will not find the right documents.",
            AlignmentQualityWarning,
            stacklevel=stacklevel + 1,
        )


__all__ = [
    "CHANCE_MARGIN",
    "AlignmentQualityWarning",
    "RetrievalQuality",
    "SearchResult",
    "check_quality",
    "cross_validated_quality",
    "fold_assignment",
    "partner_ranks",
    "search",
]
