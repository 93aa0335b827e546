"""The densification loss on class-pure groups (hf_relrep.topology.densification), through every backend."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from point_clouds import backend_params

from hf_relrep.errors import ConfigurationError, NonFiniteError, TopologyError
from hf_relrep.topology import death_times, dispatch
from hf_relrep.topology.densification import death_times_by_class, densification, densification_loss
from hf_relrep.topology.grouping import class_groups


BACKENDS = backend_params()

# class 0 at 0, 1, 3 (deaths 1, 2), class 1 at 10, 10.5 (death 0.5), class 2 alone at 100.
LINE = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [100.0]])
LINE_LABELS = torch.tensor([0, 0, 0, 1, 1, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_densification_loss_on_a_hand_checked_example(backend):
    latents = LINE.clone().requires_grad_(True)
    loss = densification_loss(latents, LINE_LABELS, beta=1.0, backend=backend)
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_unequal_class_sizes_in_any_order_equal_the_per_class_sum(backend):
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([2] * 7 + [0] * 4 + [5] * 4 + [1] * 2)[torch.randperm(17, generator=generator)]
    latents = torch.randn(17, 6, generator=generator)
    beta = 0.8
    expected = sum((death_times(latents[labels == c]) - beta).abs().sum() for c in labels.unique())
    torch.testing.assert_close(densification_loss(latents, labels, beta=beta, backend=backend), expected)


def test_balanced_batch_is_computed_in_one_call_of_one_backend(monkeypatch):
    calls = []
    for backend in dispatch.BACKENDS.values():
        original = backend.deviation_losses
        monkeypatch.setattr(
            backend, "deviation_losses", lambda c, *a, f=original: calls.append([x.shape for x in c]) or f(c, *a)
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
        (torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), {"beta": 1.0, "backend": "ripser"}, ConfigurationError),
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_densification_of_two_spaces_equals_two_losses(backend):
    generator = torch.Generator().manual_seed(3)
    labels = torch.tensor([1, 0, 1, 2, 0, 0, 1, 2, 2, 0, 1, 2, 0, 1, 0, 2])
    latents, relative = torch.randn(16, 6, generator=generator), torch.randn(16, 9, generator=generator)
    pre, post = densification([latents, relative], labels, betas=[0.5, 1.5], samples_per_class=2, backend=backend)
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_of_densification_never_synchronizes_with_the_host():
    from hf_relrep.checks import raise_deferred_errors

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
