"""death_times through every persistence backend: the same checks against gudhi's persistence for each."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from point_clouds import backend_params, gudhi_death_times, random_cloud, tied_cloud

from hf_relrep.errors import NonFiniteError, TopologyError
from hf_relrep.topology import death_times
from hf_relrep.topology.backends.base import edge_lengths
from hf_relrep.topology.backends.gudhi import gudhi_edges


BACKENDS = backend_params()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    groups=st.one_of(st.none(), st.integers(1, 4)),
    n=st.integers(2, 40),
    d=st.integers(1, 40),
)
def test_death_times_match_gudhi_persistence(backend, seed, groups, n, d):
    points = random_cloud(seed, *((n, d) if groups is None else (groups, n, d)))
    ours = death_times(points, backend=backend)
    assert ours.shape == points.shape[:-1][:-1] + (n - 1,)
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.reshape(-1, n, d).numpy()])
    np.testing.assert_allclose(ours.reshape(-1, n - 1).numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [2, 3, 16, 64, 256])
@pytest.mark.parametrize("kind", ["gaussian", "ties and duplicates"])
def test_death_times_equal_gudhi_at_every_size(backend, n, kind):
    groups, d = (3, 4) if n < 256 else (1, 3)
    for seed in range(2):
        points = random_cloud(seed, groups, n, d) if kind == "gaussian" else tied_cloud(seed, groups, n, d)
        expected = np.stack([gudhi_death_times(cloud) for cloud in points.numpy()])
        for dtype in (torch.float64, torch.float32):
            ours = death_times(points.to(dtype), backend=backend).double().numpy()
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("groups", "n", "d"), [(5, 16, 768), (8, 64, 128), (3, 100, 2), (1, 600, 4)])
def test_death_times_match_gudhi_at_training_shapes_in_float32(backend, groups, n, d):
    points = random_cloud(groups * n + d, groups, n, d)
    ours = death_times(points.float(), backend=backend)
    assert ours.dtype == torch.float32
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.numpy()])
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_cluster_far_from_the_origin_keeps_its_small_death_times(backend):
    # latents with a large common offset and a small spread: the tree must not depend on the offset
    points = (1000.0 + 0.01 * random_cloud(7, 4, 24, 16)).float()
    expected = np.stack([gudhi_death_times(cloud) for cloud in points.double().numpy()])
    np.testing.assert_allclose(death_times(points, backend=backend).double().numpy(), expected, rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e100])
def test_death_times_scale_with_the_points_even_at_extreme_magnitudes(backend, scale):
    points = random_cloud(8, 3, 20, 5)
    torch.testing.assert_close(death_times(points * scale, backend=backend) / scale, death_times(points))


@pytest.mark.parametrize("backend", BACKENDS)
def test_death_times_of_collinear_points_are_the_gaps_sorted(backend):
    points = torch.tensor([[3.0], [0.0], [10.0], [1.0]])
    torch.testing.assert_close(death_times(points, backend=backend), torch.tensor([1.0, 2.0, 7.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_equals_loop_over_groups(backend):
    points = random_cloud(1, 6, 12, 5).requires_grad_(True)
    batched = death_times(points, backend=backend)
    looped = torch.stack([death_times(cloud, backend=backend) for cloud in points])
    torch.testing.assert_close(batched, looped)
    (grad_batched,) = torch.autograd.grad(batched.square().sum(), points)
    (grad_looped,) = torch.autograd.grad(looped.square().sum(), points)
    torch.testing.assert_close(grad_batched, grad_looped)


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_and_gradients_equal_those_of_the_gudhi_backend(backend):
    points = random_cloud(2, 4, 20, 7).requires_grad_(True)
    weights = random_cloud(3, 4, 19)
    ours, reference = death_times(points, backend=backend), death_times(points, backend="gudhi")
    torch.testing.assert_close(ours, reference)
    grads = [torch.autograd.grad((v * weights).sum(), points)[0] for v in (ours, reference)]
    torch.testing.assert_close(*grads)


@pytest.mark.parametrize("backend", backend_params(auto=False))  # ("auto" is one of the others)
@pytest.mark.parametrize("shape", [(7, 3), (2, 6, 4), (2, 40, 2)])
def test_gradient_matches_finite_differences(backend, shape):
    points = random_cloud(4, *shape).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: death_times(x, backend=backend), (points,))


@pytest.mark.parametrize("backend", backend_params(auto=False, reference=False))
@pytest.mark.parametrize("shape", [(3, 16, 5), (1, 48, 3)])  # 48³ elements: the Borůvka rounds run before the closure
def test_gradcheck_with_ties_away_from_the_chosen_edges(backend, shape):
    points = random_cloud(11, *shape).requires_grad_(True)
    weights = torch.linspace(-1, 1, shape[1] - 1)
    assert torch.autograd.gradcheck(lambda x: (death_times(x, backend=backend) * weights).sum(), (points,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_points_give_zero_deaths_and_finite_gradients(backend):
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    deaths = death_times(points, backend=backend)
    torch.testing.assert_close(deaths, torch.tensor([0.0, 0.0, 1.0, 2.0]))
    (grad,) = torch.autograd.grad((deaths - 0.5).abs().sum(), points)
    assert torch.isfinite(grad).all()
    # the non-zero edges still carry gradient: the edge (0, 0)-(0, 2) of length 2 > 0.5 grows as (0, 2) moves up
    assert grad[4, 1] == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [8, 40])
def test_all_identical_points_give_zeros_and_zero_gradient(backend, n):
    points = torch.ones(3, n, 16, requires_grad=True)
    deaths = death_times(points, backend=backend)
    assert torch.equal(deaths, torch.zeros(3, n - 1))
    (grad,) = torch.autograd.grad(deaths.sum(), points)
    assert torch.equal(grad, torch.zeros_like(points))


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_input_is_computed_in_float32(backend):
    points = random_cloud(5, 10, 4).float()
    deaths = death_times(points.bfloat16(), backend=backend)
    assert deaths.dtype == torch.float32
    torch.testing.assert_close(deaths, death_times(points.bfloat16().float(), backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_several_spaces_in_one_call_equal_separate_calls(backend):
    latents, relative = (
        random_cloud(1, 4, 16, 12).requires_grad_(True),
        random_cloud(2, 4, 16, 30).requires_grad_(True),
    )
    together = death_times([latents, relative], backend=backend)
    separate = [death_times(latents, backend=backend), death_times(relative, backend=backend)]
    for a, b in zip(together, separate, strict=True):
        torch.testing.assert_close(a, b)
    grads_together = torch.autograd.grad(together[0].sum() + together[1].square().sum(), (latents, relative))
    grads_separate = torch.autograd.grad(separate[0].sum() + separate[1].square().sum(), (latents, relative))
    for a, b in zip(grads_together, grads_separate, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spaces_of_different_sizes_dtypes_and_layouts_in_one_call_equal_separate_calls(backend):
    latents = random_cloud(3, 16, 4, 12).transpose(0, 1).float()  # [4, 16, 12], not contiguous
    relative = random_cloud(4, 4, 16, 5)  # float64
    small = random_cloud(5, 2, 7, 3)  # another cloud size: another computation
    together = death_times([x.requires_grad_(True) for x in (latents, relative, small)], backend=backend)
    assert [d.dtype for d in together] == [torch.float32, torch.float64, torch.float64]
    for a, x in zip(together, (latents, relative, small), strict=True):
        torch.testing.assert_close(a, death_times(x.detach().contiguous(), backend=backend))
    (grad,) = torch.autograd.grad(together[0].sum(), latents)
    torch.testing.assert_close(grad, torch.autograd.grad(death_times(latents, backend=backend).sum(), latents)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_double_backward_equals_the_one_of_plain_autograd_on_the_chosen_edges(backend):
    points = random_cloud(5, 3, 8, 4).requires_grad_(True)
    weights = torch.linspace(-1, 1, 7, dtype=torch.float64)
    deaths = death_times(points, backend=backend)
    (grad,) = torch.autograd.grad((deaths * weights).square().sum(), points, create_graph=True)
    (second,) = torch.autograd.grad(grad.square().sum(), points)

    u, v = gudhi_edges(points)  # the same (unique) trees, as plain autograd ops
    (plain,) = torch.autograd.grad(
        (edge_lengths([points], [(u, v)])[0] * weights).square().sum(), points, create_graph=True
    )
    torch.testing.assert_close(grad, plain)
    torch.testing.assert_close(second, torch.autograd.grad(plain.square().sum(), points)[0])


@pytest.mark.parametrize(
    ("points", "error", "match"),
    [
        (torch.zeros(1, 3), TopologyError, "at least 2 points"),
        (torch.zeros(4, 1, 3), TopologyError, "at least 2 points"),
        (torch.zeros(5), TopologyError, r"\[n, d\] or \[groups, n, d\]"),
        (torch.zeros(2, 2, 5, 3), TopologyError, r"\[n, d\] or \[groups, n, d\]"),
        (torch.zeros(5, 3, dtype=torch.long), TopologyError, "floating-point"),
        ([], TopologyError, "empty list"),
    ],
)
def test_death_times_rejects_bad_points(points, error, match):
    with pytest.raises(error, match=match):
        death_times(points)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e200])
def test_every_backend_rejects_non_finite_points(backend, bad):
    points = torch.tensor([[0.0, 1.0], [bad, 0.0], [1.0, 1.0]], dtype=torch.float64)  # 1e200: d² overflows
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        death_times(points, backend=backend)


@pytest.mark.parametrize("backend", backend_params(reference=False))
def test_deferred_checks_raise_at_a_later_call_or_at_the_end(backend):
    from hf_relrep.checks import deferred_checks, raise_deferred_errors

    bad = torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 1.0]])
    with pytest.raises(NonFiniteError), deferred_checks():
        deaths = death_times(bad, backend=backend)  # no error yet: the check is queued
        assert deaths.shape == (2,)
    with deferred_checks():
        death_times(bad, backend=backend)
        with pytest.raises(NonFiniteError):
            death_times(torch.randn(4, 3), backend=backend)  # the next check raises the pending failure
    raise_deferred_errors()  # nothing left pending


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["auto", "boruvka", "gudhi"])
def test_backends_run_on_cuda_and_agree_with_cpu(backend):
    points = [tied_cloud(5, 4, 16, 3).float(), random_cloud(6, 4, 16, 40).float(), random_cloud(7, 5, 16, 32).float()]
    on_device = death_times([p.cuda() for p in points], backend=backend)
    for a, b in zip(on_device, death_times(points), strict=True):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-5)
