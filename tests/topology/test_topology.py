"""Death times, the densification loss and the histogram plot (hf_relrep.topology)."""

import io

import gudhi
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_relrep.errors import ConfigurationError, NonFiniteError, TopologyError
from hf_relrep.topology import compiled_tree, densification, host_spanning_tree
from hf_relrep.topology import persistence as topology
from hf_relrep.topology.densification import death_times_by_class, densification_loss
from hf_relrep.topology.persistence import death_times
from hf_relrep.topology.spanning_tree import edge_lengths
from hf_relrep.utils.plotting import plot_death_time_histograms


@pytest.fixture(scope="module", autouse=True, params=["host-prim", "host-compiled", "batched-rounds"])
def spanning_tree_path(request):
    """Every test here runs on every spanning-tree path: Prim on the host (small CPU clouds) in NumPy rounds or
    compiled with Numba (where installed), and the batched rounds that accelerators and large clouds take."""
    if request.param == "host-compiled" and not compiled_tree.numba_available():
        pytest.skip("Numba is not installed (the `fast` extra)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(host_spanning_tree, "USE_COMPILED", request.param == "host-compiled")
        if request.param == "batched-rounds":
            patch.setattr(host_spanning_tree, "HOST_PRIM_MAX_POINTS", 0)
        yield request.param


def test_small_cpu_clouds_take_prim_on_the_host_and_large_ones_the_batched_rounds(monkeypatch, spanning_tree_path):
    calls = []
    module = compiled_tree if spanning_tree_path == "host-compiled" else host_spanning_tree
    original = module.prim_edges
    monkeypatch.setattr(module, "prim_edges", lambda sq: calls.append(sq.shape) or original(sq))
    closure_only = torch.randn(2, 8, 4)  # 2 · 8³ elements: the batched path closes it at once
    rounds = torch.randn(3, 64, 4)  # 3 · 64³ > CLOSURE_MAX_ELEMENTS: the batched path needs Borůvka rounds
    large = torch.randn(1, 600, 4)  # 600 > HOST_PRIM_MAX_POINTS: the batched rounds on every path
    for points in (closure_only, rounds, large):
        torch.testing.assert_close(death_times(points), death_times(points, backend="gudhi"))
    host = spanning_tree_path.startswith("host")
    assert calls == ([(2, 8, 8), (3, 64, 64)] if host else [])


def gudhi_death_times(points: np.ndarray) -> np.ndarray:
    """Finite 0-dimensional death times from gudhi's own persistence diagram (independent of our backends)."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    tree = gudhi.RipsComplex(distance_matrix=distances).create_simplex_tree(max_dimension=1)
    return np.sort([death for dim, (_, death) in tree.persistence() if dim == 0 and np.isfinite(death)])


def random_cloud(seed: int, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    groups=st.one_of(st.none(), st.integers(1, 4)),
    n=st.integers(2, 40),
    d=st.integers(1, 40),
    backend=st.sampled_from(["torch", "gudhi"]),
)
def test_death_times_match_gudhi_persistence(seed, groups, n, d, backend):
    points = random_cloud(seed, *((n, d) if groups is None else (groups, n, d)))
    ours = death_times(points, backend=backend)
    assert ours.shape == points.shape[:-1][:-1] + (n - 1,)
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.reshape(-1, n, d).numpy()])
    np.testing.assert_allclose(ours.reshape(-1, n - 1).numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("groups", "n", "d"), [(5, 16, 768), (8, 64, 128), (3, 100, 2)])
def test_death_times_match_gudhi_at_training_shapes_in_float32(groups, n, d):
    points = random_cloud(groups * n + d, groups, n, d)
    ours = death_times(points.float())
    assert ours.dtype == torch.float32
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.numpy()])
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_float32_cluster_far_from_the_origin_keeps_its_small_death_times():
    # latents with a large common offset and a small spread: the tree must not depend on the offset
    points = (1000.0 + 0.01 * random_cloud(7, 4, 24, 16)).float()
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.double().numpy()])
    np.testing.assert_allclose(death_times(points).double().numpy(), expected, rtol=1e-3)


@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e100])
def test_death_times_scale_with_the_points_even_at_extreme_magnitudes(scale):
    points = random_cloud(8, 3, 20, 5)
    torch.testing.assert_close(death_times(points * scale) / scale, death_times(points))


def test_death_times_of_collinear_points_are_the_gaps_sorted():
    points = torch.tensor([[3.0], [0.0], [10.0], [1.0]])
    torch.testing.assert_close(death_times(points), torch.tensor([1.0, 2.0, 7.0]))


def test_batched_equals_loop_over_groups():
    points = random_cloud(1, 6, 12, 5).requires_grad_(True)
    batched = death_times(points)
    looped = torch.stack([death_times(cloud) for cloud in points])
    torch.testing.assert_close(batched, looped)
    (grad_batched,) = torch.autograd.grad(batched.square().sum(), points)
    (grad_looped,) = torch.autograd.grad(looped.square().sum(), points)
    torch.testing.assert_close(grad_batched, grad_looped)


def test_torch_and_gudhi_backends_agree_in_values_and_gradients():
    points = random_cloud(2, 4, 20, 7).requires_grad_(True)
    weights = random_cloud(3, 4, 19)
    values = {backend: death_times(points, backend=backend) for backend in ("torch", "gudhi")}
    grads = {name: torch.autograd.grad((v * weights).sum(), points)[0] for name, v in values.items()}
    torch.testing.assert_close(values["torch"], values["gudhi"])
    torch.testing.assert_close(grads["torch"], grads["gudhi"])


@pytest.mark.parametrize("backend", ["torch", "gudhi"])
@pytest.mark.parametrize("shape", [(7, 3), (2, 6, 4), (2, 40, 2)])  # both ways of computing edge lengths
def test_gradient_matches_finite_differences(backend, shape):
    points = random_cloud(4, *shape).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: death_times(x, backend=backend), (points,))


@pytest.mark.parametrize("backend", ["torch", "gudhi"])
def test_duplicate_points_give_zero_deaths_and_finite_gradients(backend):
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    deaths = death_times(points, backend=backend)
    torch.testing.assert_close(deaths, torch.tensor([0.0, 0.0, 1.0, 2.0]))
    (grad,) = torch.autograd.grad((deaths - 0.5).abs().sum(), points)
    assert torch.isfinite(grad).all()
    # the non-zero edges still carry gradient: the edge (0, 0)-(0, 2) of length 2 > 0.5 grows as (0, 2) moves up
    assert grad[4, 1] == 1.0


@pytest.mark.parametrize("backend", ["torch", "gudhi"])
@pytest.mark.parametrize("n", [8, 40])
def test_all_identical_points_give_zeros_and_zero_gradient(backend, n):
    points = torch.ones(3, n, 16, requires_grad=True)
    deaths = death_times(points, backend=backend)
    assert torch.equal(deaths, torch.zeros(3, n - 1))
    (grad,) = torch.autograd.grad(deaths.sum(), points)
    assert torch.equal(grad, torch.zeros_like(points))


def test_half_precision_input_is_computed_in_float32():
    points = random_cloud(5, 10, 4).float()
    deaths = death_times(points.bfloat16())
    assert deaths.dtype == torch.float32
    torch.testing.assert_close(deaths, death_times(points.bfloat16().float()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_backend_runs_on_cuda_and_agrees_with_cpu():
    points = random_cloud(6, 5, 16, 32).float()
    on_device = death_times(points.cuda())
    assert on_device.device.type == "cuda"
    torch.testing.assert_close(on_device.cpu(), death_times(points), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("points", "error", "match"),
    [
        (torch.zeros(1, 3), TopologyError, "at least 2 points"),
        (torch.zeros(4, 1, 3), TopologyError, "at least 2 points"),
        (torch.zeros(5), TopologyError, r"\[n, d\] or \[groups, n, d\]"),
        (torch.zeros(2, 2, 5, 3), TopologyError, r"\[n, d\] or \[groups, n, d\]"),
        (torch.zeros(5, 3, dtype=torch.long), TopologyError, "floating-point"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), NonFiniteError, "NaN or infinite"),
        (torch.tensor([[0.0, 1.0], [float("inf"), 0.0]]), NonFiniteError, "NaN or infinite"),
    ],
)
def test_death_times_rejects_bad_points(points, error, match):
    with pytest.raises(error, match=match):
        death_times(points)


def test_gudhi_backend_rejects_non_finite_points():
    with pytest.raises(NonFiniteError):
        death_times(torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 1.0]]), backend="gudhi")


def test_death_times_rejects_unknown_backend():
    with pytest.raises(ConfigurationError, match="torch, gudhi"):
        death_times(torch.zeros(3, 2), backend="ripser")


# densification_loss: class 0 at 0, 1, 3 (deaths 1, 2), class 1 at 10, 10.5 (death 0.5), class 2 alone at 100.
LINE = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [100.0]])
LINE_LABELS = torch.tensor([0, 0, 0, 1, 1, 2])


def test_densification_loss_on_a_hand_checked_example():
    latents = LINE.clone().requires_grad_(True)
    loss = densification_loss(latents, LINE_LABELS, beta=1.0)
    assert loss.ndim == 0
    torch.testing.assert_close(loss, torch.tensor(0.0 + 1.0 + 0.5))  # |1-1| + |2-1| + |0.5-1|
    loss.backward()
    # edge 1-3 is too long (pull together), edge 10-10.5 too short (push apart), edge 0-1 is at beta
    torch.testing.assert_close(latents.grad.squeeze(1), torch.tensor([0.0, -1.0, 1.0, 1.0, -1.0, 0.0]))


def test_groups_of_one_contribute_nothing():
    with_singletons = torch.cat([LINE, torch.tensor([[-50.0], [7.0]])])
    labels = torch.cat([LINE_LABELS, torch.tensor([3, 4])])
    torch.testing.assert_close(
        densification_loss(with_singletons, labels, beta=1.0), densification_loss(LINE[:5], LINE_LABELS[:5], beta=1.0)
    )


def test_unequal_class_sizes_in_any_order_equal_the_per_class_sum():
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([2] * 7 + [0] * 4 + [5] * 4 + [1] * 2)[torch.randperm(17, generator=generator)]
    latents = torch.randn(17, 6, generator=generator)
    beta = 0.8
    expected = sum((death_times(latents[labels == c]) - beta).abs().sum() for c in labels.unique())
    torch.testing.assert_close(densification_loss(latents, labels, beta=beta), expected)


def test_balanced_batch_is_computed_in_one_batched_call(monkeypatch):
    calls = []
    batched, host = topology.minimum_spanning_edges, densification.host_deviation_losses
    monkeypatch.setattr(topology, "minimum_spanning_edges", lambda c: calls.append([x.shape for x in c]) or batched(c))
    monkeypatch.setattr(
        densification, "host_deviation_losses", lambda c, *a: calls.append([x.shape for x in c]) or host(c, *a)
    )
    labels = torch.arange(5).repeat_interleave(16)
    densification_loss(torch.randn(80, 8), labels, beta=1.0)
    assert calls == [[torch.Size([5, 16, 8])]]


def test_samples_per_class_cuts_each_class_into_consecutive_groups():
    latents = torch.tensor([[0.0], [1.0], [5.0], [7.0], [100.0], [20.0], [23.0]])
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    # class 0: groups (0, 1) and (5, 7), the leftover 100 is left out; class 1: (20, 23)
    loss, deaths = densification_loss(latents, labels, beta=0.0, samples_per_class=2, return_death_times=True)
    torch.testing.assert_close(loss, torch.tensor(1.0 + 2.0 + 3.0))
    torch.testing.assert_close(deaths[0], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(deaths[1], torch.tensor([3.0]))


def test_return_death_times_gives_detached_deaths_per_class():
    latents = LINE.clone().requires_grad_(True)
    loss, deaths = densification_loss(latents, LINE_LABELS, beta=1.0, return_death_times=True)
    assert sorted(deaths) == [0, 1]  # class 2 has a single sample
    torch.testing.assert_close(deaths[0], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(deaths[1], torch.tensor([0.5]))
    assert not any(d.requires_grad for d in deaths.values())
    assert loss.requires_grad


@pytest.mark.parametrize("samples_per_class", [None, 3])
def test_batch_without_a_class_group_raises_and_says_how_to_build_batches(samples_per_class):
    labels = torch.tensor([0, 1, 2, 3]) if samples_per_class is None else torch.tensor([0, 0, 1, 1])
    with pytest.raises(TopologyError, match="class-balanced sampler"):
        densification_loss(torch.randn(4, 3), labels, beta=1.0, samples_per_class=samples_per_class)


@pytest.mark.parametrize(
    ("latents", "labels", "kwargs", "error"),
    [
        (torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), {"beta": -1.0}, ConfigurationError),
        (torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), {"beta": float("nan")}, ConfigurationError),
        (torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), {"beta": 1.0, "samples_per_class": 1}, ConfigurationError),
        (torch.randn(4, 3), torch.tensor([0, 0, 1]), {"beta": 1.0}, TopologyError),
        (torch.randn(4, 3), torch.tensor([0.0, 0.0, 1.0, 1.0]), {"beta": 1.0}, TopologyError),
        (torch.randn(2, 4, 3), torch.tensor([0, 0]), {"beta": 1.0}, TopologyError),
        (torch.tensor([[0.0], [float("nan")]]), torch.tensor([0, 0]), {"beta": 1.0}, NonFiniteError),
    ],
)
def test_densification_loss_rejects_bad_input(latents, labels, kwargs, error):
    with pytest.raises(error):
        densification_loss(latents, labels, **kwargs)


def test_death_times_by_class_has_no_gradient_and_is_empty_without_groups():
    latents = LINE.clone().requires_grad_(True)
    deaths = death_times_by_class(latents, LINE_LABELS)
    assert sorted(deaths) == [0, 1]
    torch.testing.assert_close(deaths[0], torch.tensor([1.0, 2.0]))
    assert not deaths[0].requires_grad
    assert death_times_by_class(latents[:2], torch.tensor([0, 1])) == {}


def test_plot_writes_a_png_with_one_panel_per_class(tmp_path):
    pytest.importorskip("matplotlib")  # an optional dependency
    before = death_times_by_class(LINE, LINE_LABELS)
    after = {0: torch.tensor([0.9, 1.1]), 1: [1.0], 3: np.array([0.5, 0.7])}
    path = tmp_path / "deaths.png"
    figure = plot_death_time_histograms(before, after, path, beta=1.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["class 0", "class 1", "class 3"]


def test_plot_without_after_returns_a_figure_that_renders():
    pytest.importorskip("matplotlib")  # an optional dependency
    figure = plot_death_time_histograms({0: torch.tensor([1.0, 2.0])})
    assert [ax.get_title() for ax in figure.axes] == ["class 0"]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_plot_rejects_empty_input():
    pytest.importorskip("matplotlib")  # an optional dependency
    with pytest.raises(TopologyError, match="death_times_by_class"):
        plot_death_time_histograms({})


# --- the batched spanning tree: exact on ties and duplicates, several spaces per call, no host synchronisation


def gudhi_death_times_with_zeros(points: np.ndarray) -> np.ndarray:
    """gudhi's finite 0-dimensional deaths, zero-length ones (duplicate points) included."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    tree = gudhi.RipsComplex(distance_matrix=distances).create_simplex_tree(max_dimension=1)
    tree.compute_persistence(min_persistence=-1.0)
    deaths = tree.persistence_intervals_in_dimension(0)[:, 1]
    return np.sort(deaths[np.isfinite(deaths)])


def tied_cloud(seed: int, groups: int, n: int, d: int) -> torch.Tensor:
    """Integer points on a small grid with repeated rows: many equal distances and zero-length edges."""
    rng = np.random.default_rng(seed)
    points = rng.integers(-2, 3, size=(groups, n, d)).astype(np.float64)
    repeat = rng.integers(0, n, size=(groups, n // 3))
    for g in range(groups):
        points[g, rng.integers(0, n, size=n // 3)] = points[g, repeat[g]]
    return torch.from_numpy(points)


@pytest.mark.parametrize("n", [2, 3, 16, 64, 256])
@pytest.mark.parametrize("kind", ["gaussian", "ties and duplicates"])
def test_death_times_equal_gudhi_at_every_size(n, kind):
    groups, d = (3, 4) if n < 256 else (1, 3)
    for seed in range(3):
        points = random_cloud(seed, groups, n, d) if kind == "gaussian" else tied_cloud(seed, groups, n, d)
        expected = np.stack([gudhi_death_times_with_zeros(cloud) for cloud in points.numpy()])
        for dtype in (torch.float64, torch.float32):
            ours = death_times(points.to(dtype)).double().numpy()
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [3, 16, 64])
def test_the_tree_is_a_spanning_tree_even_with_ties(n):
    from hf_relrep.topology.host_spanning_tree import prim_edges
    from hf_relrep.topology.spanning_tree import _squared_distances, minimum_spanning_edges

    points = tied_cloud(4, 5, n, 2)
    ((u, v),), _ = minimum_spanning_edges([points])  # the batched rounds
    assert u.shape == v.shape == (5, n - 1) and bool((u < v).all())
    assert_spanning_trees(u, v, n)
    sq = _squared_distances([points])[0].numpy()
    rows = sq.reshape(-1, n)
    batched = np.sort(sq[np.arange(5)[:, None], u.numpy(), v.numpy()], 1)
    prims = [prim_edges] + ([compiled_tree.prim_edges] if compiled_tree.numba_available() else [])
    for prim in prims:  # Prim on the host, in NumPy rounds and compiled: flat indices g·n + i
        u, v = prim(sq)
        assert u.shape == v.shape == (5, n - 1)
        assert ((u // n) == np.arange(5)[:, None]).all() and ((v // n) == np.arange(5)[:, None]).all()
        assert_spanning_trees(u % n, v % n, n)
        np.testing.assert_array_equal(np.sort(rows[u, v % n], 1), batched)  # trees of the same total length


def assert_spanning_trees(u, v, n: int) -> None:
    for edges_u, edges_v in zip(u.tolist(), v.tolist(), strict=True):
        parent = list(range(n))

        def root(a: int, parent: list[int] = parent) -> int:
            while parent[a] != a:
                a = parent[a]
            return a

        for a, b in zip(edges_u, edges_v, strict=True):
            assert root(a) != root(b), "the edges form a cycle"
            parent[root(a)] = root(b)


@pytest.mark.parametrize("shape", [(3, 16, 5), (2, 64, 3)])
def test_gradcheck_with_ties_away_from_the_chosen_edges(shape):
    points = random_cloud(11, *shape).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: (death_times(x) * torch.linspace(-1, 1, shape[1] - 1)).sum(), (points,))


def test_several_spaces_in_one_call_equal_separate_calls():
    latents, relative = (
        random_cloud(1, 4, 16, 12).requires_grad_(True),
        random_cloud(2, 4, 16, 30).requires_grad_(True),
    )
    together = death_times([latents, relative])
    separate = [death_times(latents), death_times(relative)]
    for a, b in zip(together, separate, strict=True):
        torch.testing.assert_close(a, b)
    grads_together = torch.autograd.grad(together[0].sum() + together[1].square().sum(), (latents, relative))
    grads_separate = torch.autograd.grad(separate[0].sum() + separate[1].square().sum(), (latents, relative))
    for a, b in zip(grads_together, grads_separate, strict=True):
        torch.testing.assert_close(a, b)


def test_spaces_of_different_dtypes_and_layouts_in_one_call_equal_separate_calls():
    latents = random_cloud(3, 16, 4, 12).transpose(0, 1).float()  # [4, 16, 12], not contiguous
    relative = random_cloud(4, 4, 16, 5)  # float64
    together = death_times([latents.requires_grad_(True), relative.requires_grad_(True)])
    assert [d.dtype for d in together] == [torch.float32, torch.float64]
    for a, x in zip(together, (latents, relative), strict=True):
        torch.testing.assert_close(a, death_times(x.detach().contiguous()))
    (grad,) = torch.autograd.grad(together[0].sum(), latents)
    torch.testing.assert_close(grad, torch.autograd.grad(death_times(latents).sum(), latents)[0])


def test_a_double_backward_equals_the_one_of_plain_autograd_on_the_chosen_edges():
    points = random_cloud(5, 3, 8, 4).requires_grad_(True)
    weights = torch.linspace(-1, 1, 7, dtype=torch.float64)
    (grad,) = torch.autograd.grad((death_times(points) * weights).square().sum(), points, create_graph=True)
    (second,) = torch.autograd.grad(grad.square().sum(), points)

    u, v = topology._mst_edges_gudhi(points)  # the same (unique) trees, as plain autograd ops
    (plain,) = torch.autograd.grad(
        (edge_lengths([points], [(u, v)])[0] * weights).square().sum(), points, create_graph=True
    )
    torch.testing.assert_close(grad, plain)
    torch.testing.assert_close(second, torch.autograd.grad(plain.square().sum(), points)[0])


def test_densification_of_two_spaces_equals_two_losses():
    from hf_relrep.topology.densification import densification

    generator = torch.Generator().manual_seed(3)
    labels = torch.tensor([1, 0, 1, 2, 0, 0, 1, 2, 2, 0, 1, 2, 0, 1, 0, 2])
    latents, relative = torch.randn(16, 6, generator=generator), torch.randn(16, 9, generator=generator)
    pre, post = densification([latents, relative], labels, betas=[0.5, 1.5], samples_per_class=2)
    torch.testing.assert_close(pre.loss, densification_loss(latents, labels, beta=0.5, samples_per_class=2))
    torch.testing.assert_close(post.loss, densification_loss(relative, labels, beta=1.5, samples_per_class=2))
    assert float(pre.num_groups) == 7  # 6 zeros, 4 ones, 4 twos... in pairs: 3 + 2 + 2
    expected = death_times_by_class(relative, labels, samples_per_class=2)
    assert post.by_class().keys() == expected.keys()
    for label, deaths in expected.items():
        torch.testing.assert_close(post.by_class()[label], deaths)
    torch.testing.assert_close(post.median_death_time(), torch.cat(list(expected.values())).median())


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=2, max_size=40), n=st.integers(2, 6))
def test_groups_built_on_the_device_equal_the_host_groups(labels, n):
    from hf_relrep.topology.grouping import class_groups

    labels = torch.tensor(labels)
    host = class_groups(labels, n, on_device=False)
    (device,) = class_groups(labels, n, on_device=True)
    real = int(device.valid.sum())
    assert device.index.shape == (len(labels) // n, n)
    if not host:
        assert real == 0
        return
    assert torch.equal(device.index[:real], host[0].index)
    assert torch.equal(device.classes[:real], host[0].classes)
    assert bool((device.classes[real:] == -1).all())


def test_deferred_checks_raise_at_a_later_call_or_at_the_end():
    from hf_relrep.checks import deferred_checks, raise_deferred_errors

    bad = torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 1.0]])
    with pytest.raises(NonFiniteError), deferred_checks():
        deaths = death_times(bad)  # no error yet: the check is queued
        assert deaths.shape == (2,)
    with deferred_checks():
        death_times(bad)
        with pytest.raises(NonFiniteError):
            death_times(torch.randn(4, 3))  # the next check raises the pending failure
    raise_deferred_errors()  # nothing left pending


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_of_densification_never_synchronizes_with_the_host():
    from hf_relrep.checks import raise_deferred_errors
    from hf_relrep.topology.densification import densification

    labels = torch.arange(5, device="cuda").repeat_interleave(16)[torch.randperm(80, device="cuda")]
    latents = torch.randn(80, 768, device="cuda", requires_grad=True)
    relative = torch.randn(80, 64, device="cuda", requires_grad=True)

    def step():
        pre, post = densification([latents, relative], labels, betas=[0.5, 2.0], samples_per_class=16)
        (pre.loss / pre.num_groups + post.loss / post.num_groups).backward()
        return pre.median_death_time() + post.median_death_time()

    step()  # first call: constants cached, kernels loaded
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        death_times(latents.detach().view(5, 16, 768)).sum()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    raise_deferred_errors()
    bad = latents.detach().clone()
    bad[3, 0] = float("nan")
    densification([bad], labels, betas=[0.5], samples_per_class=16)  # returns at once ...
    with pytest.raises(NonFiniteError):
        raise_deferred_errors()  # ... and the error comes at the next logging step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_ties_and_several_spaces():
    points = [tied_cloud(5, 4, 16, 3).float(), random_cloud(6, 4, 16, 40).float()]
    on_device = death_times([p.cuda() for p in points])
    for a, b in zip(on_device, death_times(points), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-5)


def test_the_deviation_loss_sums_the_rows_that_are_groups_and_gives_the_others_no_gradient():
    points = random_cloud(12, 4, 10, 3).requires_grad_(True)
    valid = torch.tensor([True, False, True, True])

    def loss(x: torch.Tensor) -> torch.Tensor:
        (loss,), (lengths,) = densification._deviation_losses([x], [0.7], valid)
        assert not lengths.requires_grad and lengths.shape == (4, 9)
        return loss

    expected = sum((death_times(points[g]) - 0.7).abs().sum() for g in (0, 2, 3))
    torch.testing.assert_close(loss(points), expected)
    (grad,) = torch.autograd.grad(loss(points), points)
    torch.testing.assert_close(grad, torch.autograd.grad(expected, points)[0])
    assert torch.equal(grad[1], torch.zeros(10, 3))  # a row that is not a group gets no gradient
    assert torch.autograd.gradcheck(loss, (points.detach().requires_grad_(True),))


def test_a_numba_that_does_not_import_falls_back_to_numpy_with_a_warning(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "numba":
            raise ImportError("Numba needs NumPy 2.3 or less")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(compiled_tree.importlib.util, "find_spec", lambda name: object())  # "installed"
    monkeypatch.delitem(__import__("sys").modules, "numba", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.warns(RuntimeWarning, match="does not import.*NumPy instead"):
        assert not compiled_tree.numba_available()
    monkeypatch.setenv(compiled_tree.ENV_VAR, "0")
    assert not compiled_tree.numba_available()  # switched off: not even tried
