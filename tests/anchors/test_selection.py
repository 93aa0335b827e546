"""Anchor selection: coverage of a clustered space, class coverage, determinism, typed errors."""

import pytest
import torch

from hf_relrep import select_anchors
from hf_relrep.anchors.selection import ANCHOR_STRATEGIES, register_anchor_strategy, stratified_quota
from hf_relrep.errors import AnchorError, ConfigurationError, DataError, NonFiniteError


STRATEGIES = ("random", "kmeans", "fps")


def _clustered(seed: int = 0, clusters: int = 12, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Unequal, well-separated Gaussian blobs: a few big clusters and many small ones."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 10
    sizes = [600 if c < 3 else 40 for c in range(clusters)]
    labels = torch.cat([torch.full((size,), c) for c, size in enumerate(sizes)])
    points = centres[labels] + torch.randn(len(labels), dim, generator=generator)
    return points, labels


def _coverage(points: torch.Tensor, indices: torch.Tensor) -> float:
    """Mean distance of each point to its nearest anchor."""
    return float(torch.cdist(points, points[indices]).min(1).values.mean())


@pytest.mark.parametrize("strategy", [*STRATEGIES, "stratified"])
def test_returns_k_distinct_valid_indices_deterministically(strategy):
    points, labels = _clustered()
    extra = {"labels": labels} if strategy == "stratified" else {}
    first = select_anchors(points, 24, strategy=strategy, seed=3, **extra)
    again = select_anchors(points, 24, strategy=strategy, seed=3, **extra)
    other = select_anchors(points, 24, strategy=strategy, seed=4, **extra)
    assert first.dtype == torch.long and first.shape == (24,)
    assert len(set(first.tolist())) == 24
    assert int(first.min()) >= 0 and int(first.max()) < len(points)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("strategy", ["kmeans", "fps"])
def test_kmeans_and_fps_cover_a_clustered_space_better_than_random(strategy):
    points, _ = _clustered()
    random_coverage = [_coverage(points, select_anchors(points, 12, strategy="random", seed=s)) for s in range(5)]
    chosen = _coverage(points, select_anchors(points, 12, strategy=strategy, seed=0))
    assert chosen < min(random_coverage)


def test_kmeans_returns_medoids_and_finds_every_cluster():
    points, labels = _clustered()
    indices = select_anchors(points, 12, strategy="kmeans", seed=0)
    assert sorted(labels[indices].tolist()) == list(range(12))  # one real point per blob, small blobs included


def test_kmeans_leaves_the_thread_count_as_it_found_it():
    threads = torch.get_num_threads()
    select_anchors(_clustered()[0], 12, strategy="kmeans")
    assert torch.get_num_threads() == threads


def test_kmeans_medoids_stay_distinct_on_duplicated_points():
    points = torch.randn(5, 4).repeat_interleave(10, dim=0)  # 50 rows, 5 distinct points
    indices = select_anchors(points, 20, strategy="kmeans", seed=0)
    assert len(set(indices.tolist())) == 20


def test_fps_is_nested_and_picks_the_farthest_point_next():
    points, _ = _clustered()
    eight, four = select_anchors(points, 8, strategy="fps", seed=1), select_anchors(points, 4, strategy="fps", seed=1)
    assert torch.equal(eight[:4], four)
    nearest = torch.cdist(points, points[four]).min(1).values
    assert int(eight[4]) == int(nearest.argmax())


def test_stratified_covers_every_class_and_keeps_proportions():
    points, labels = _clustered()
    indices = select_anchors(points, 60, strategy="stratified", labels=labels, seed=0)
    counts = torch.bincount(labels[indices], minlength=12)
    assert (counts >= 1).all()
    # 3 classes of 600 and 9 of 40 among 2160 points: ~16.7 and ~1.1 anchors each.
    assert counts.tolist() == [17, 17, 17] + [1] * 9


def test_stratified_takes_any_hashable_labels_and_at_least_one_per_class():
    points = torch.randn(103, 3)
    labels = ["pos"] * 100 + ["neg"] * 3
    indices = select_anchors(points, 5, strategy="stratified", labels=labels, seed=0)
    assert sum(labels[i] == "neg" for i in indices.tolist()) >= 1


def test_stratified_quota_sums_to_k_within_class_sizes():
    counts = torch.tensor([1, 1, 500, 2])
    quota = stratified_quota(counts, 10)
    assert int(quota.sum()) == 10 and (quota >= 1).all() and (quota <= counts).all()


def test_texts_are_embedded_by_the_given_callable():
    texts = [f"sentence {i}" for i in range(40)]
    table = torch.randn(40, 8)
    seen = []

    def embed(batch):
        seen.append(list(batch))
        return table[[int(t.split()[1]) for t in batch]]

    from_texts = select_anchors(texts, 6, strategy="fps", seed=2, embed=embed)
    assert torch.equal(from_texts, select_anchors(table, 6, strategy="fps", seed=2))
    assert seen == [texts]


def test_registry_accepts_a_new_strategy():
    @register_anchor_strategy("first-k")
    def first_k(candidates, k, *, generator, labels=None):
        return torch.arange(k)

    try:
        assert select_anchors(torch.randn(10, 2), 3, strategy="first-k").tolist() == [0, 1, 2]
        with pytest.raises(ConfigurationError, match="already registered"):
            register_anchor_strategy("first-k")(first_k)
    finally:
        ANCHOR_STRATEGIES.unregister("first-k")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, AnchorError, "between 1 and"),
        ({"k": 51}, AnchorError, "between 1 and"),
        ({"k": 2.5}, AnchorError, "integer"),
        ({"k": 4, "strategy": "medoids"}, ConfigurationError, "Unknown anchor strategy"),
        ({"k": 4, "strategy": "stratified"}, ConfigurationError, "needs labels"),
        ({"k": 4, "labels": [0] * 50}, ConfigurationError, "stratified' only"),
        ({"k": 4, "strategy": "stratified", "labels": [0, 1] * 10}, DataError, "one label per candidate"),
        ({"k": 2, "strategy": "stratified", "labels": [0, 1, 2, 3, 4] * 10}, AnchorError, "5 classes"),
    ],
)
def test_bad_input_raises_typed_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        select_anchors(torch.randn(50, 4), **kwargs)


def test_bad_candidates_raise_typed_errors():
    with pytest.raises(AnchorError, match=r"\[n, dim\]"):
        select_anchors(torch.randn(50), 3)
    bad = torch.randn(10, 3)
    bad[4, 1] = float("nan")
    with pytest.raises(NonFiniteError):
        select_anchors(bad, 3)
    with pytest.raises(ConfigurationError, match="embed="):
        select_anchors(["a", "b", "c"], 2)
    with pytest.raises(AnchorError, match="one row per text"):
        select_anchors(["a", "b", "c"], 2, embed=lambda texts: torch.randn(2, 4))
