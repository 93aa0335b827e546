"""The persistence backends' seam: one interface, one registry, one ordered dispatch (device, size, installed, env)."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from point_clouds import assert_spanning_trees, backend_params, random_cloud, tied_cloud

from hf_relrep.errors import ConfigurationError, TopologyError
from hf_relrep.topology import death_times, densification_loss, dispatch
from hf_relrep.topology.backends import numba_prim
from hf_relrep.topology.backends.base import PersistenceBackend, centred_gram
from hf_relrep.topology.backends.boruvka import BORUVKA, minimum_spanning_edges
from hf_relrep.topology.backends.host_prim import HOST_PRIM_MAX_POINTS
from hf_relrep.topology.backends.numba_prim import NUMBA_PRIM
from hf_relrep.topology.backends.numpy_prim import NUMPY_PRIM
from hf_relrep.topology.dispatch import BACKENDS


CPU, CUDA = torch.device("cpu"), torch.device("cuda")
needs_numba = pytest.mark.skipif(not numba_prim.numba_imports(), reason="Numba is not installed (the `fast` extra)")


@pytest.fixture(autouse=True)
def _decide_numba_again():
    """Each test sees its own environment: whether "auto" uses Numba is decided anew (it is cached per process)."""
    numba_prim.numba_available.cache_clear()
    yield
    numba_prim.numba_available.cache_clear()


def auto(n: int, device: torch.device = CPU) -> str:
    return BACKENDS["auto"].select(n, device).name


def test_the_registry_holds_every_backend_by_its_name_with_one_interface():
    assert BACKENDS.names() == ("auto", "boruvka", "numpy-prim", "numba-prim", "gudhi")
    for name, backend in BACKENDS.items():
        assert isinstance(backend, PersistenceBackend) and backend.name == name


def test_a_taken_backend_name_is_refused_and_an_unknown_one_lists_the_names():
    with pytest.raises(ConfigurationError, match="already registered"):
        BACKENDS.register("boruvka", NUMPY_PRIM)
    assert BACKENDS["boruvka"] is BORUVKA
    with pytest.raises(ConfigurationError, match="'auto', 'boruvka', 'numpy-prim', 'numba-prim', 'gudhi'"):
        death_times(torch.zeros(3, 2), backend="ripser")
    with pytest.raises(ConfigurationError, match="persistence backend 'ripser'"):
        densification_loss(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), beta=1.0, backend="ripser")


@needs_numba
def test_auto_takes_numba_prim_for_small_cpu_clouds_then_the_batched_rounds():
    assert auto(2) == auto(HOST_PRIM_MAX_POINTS) == "numba-prim"
    assert auto(HOST_PRIM_MAX_POINTS + 1) == auto(2048) == "boruvka"


def test_auto_takes_numpy_prim_where_numba_is_switched_off_or_missing(monkeypatch):
    monkeypatch.setenv(numba_prim.ENV_VAR, "0")
    assert auto(16) == auto(HOST_PRIM_MAX_POINTS) == "numpy-prim"
    assert auto(HOST_PRIM_MAX_POINTS + 1) == "boruvka"
    monkeypatch.setenv(numba_prim.ENV_VAR, "1")
    monkeypatch.setattr(numba_prim, "numba_imports", lambda: False)  # not installed
    assert auto(16) == "numpy-prim"


def test_auto_takes_the_batched_rounds_on_accelerators_whatever_the_size():
    assert auto(2, CUDA) == auto(16, CUDA) == auto(2048, CUDA) == "boruvka"
    assert auto(16, torch.device("mps")) == "boruvka"


def test_auto_refuses_clouds_larger_than_the_batched_rounds_take():
    with pytest.raises(TopologyError, match="at most 2048 points.*backend='gudhi'"):
        BACKENDS["auto"].select(2049, CPU)
    with pytest.raises(TopologyError, match="at most 2048 points"):
        death_times(torch.zeros(2049, 1))


def test_the_dispatch_chain_is_walked_in_order_and_the_first_match_wins(monkeypatch):
    seen = []

    def decline(n, device):
        seen.append("decline")

    def take(n, device):
        seen.append("take")
        return NUMPY_PRIM

    monkeypatch.setattr(dispatch, "DISPATCH_CHAIN", (decline, take, lambda n, device: pytest.fail("not reached")))
    assert auto(5000, CUDA) == "numpy-prim" and seen == ["decline", "take"]


def test_death_times_computes_each_size_with_the_backend_auto_picks(monkeypatch):
    calls = []
    for backend in (NUMPY_PRIM, NUMBA_PRIM, BORUVKA):
        original = backend.tree_lengths
        monkeypatch.setattr(
            backend,
            "tree_lengths",
            lambda c, sort, b=backend, f=original: calls.append((b.name, c[0].shape)) or f(c, sort=sort),
        )
    small, large = random_cloud(0, 2, 8, 4), random_cloud(1, 1, HOST_PRIM_MAX_POINTS + 88, 4)
    death_times([small, large, small.clone()])
    host = "numba-prim" if numba_prim.numba_available() else "numpy-prim"
    assert calls == [(host, (2, 8, 4)), ("boruvka", (1, 600, 4))]  # the two small tensors: one computation


def test_a_named_backend_runs_where_auto_would_not_and_refuses_what_it_cannot_compute(monkeypatch):
    large = random_cloud(2, 1, 2100, 2)  # beyond the batched rounds' keys: Prim on the host has no size limit
    deaths = death_times(large, backend="numpy-prim")
    assert deaths.shape == (1, 2099) and bool((deaths[:, 1:] >= deaths[:, :-1]).all())
    with pytest.raises(TopologyError, match="'boruvka' computes clouds of at most 2048"):
        death_times(large, backend="boruvka")
    for backend in (NUMPY_PRIM, NUMBA_PRIM):
        if backend is NUMBA_PRIM and not numba_prim.numba_imports():
            continue
        with pytest.raises(ConfigurationError, match="CPU tensors only.*backend='auto' or 'boruvka'"):
            backend.select(16, CUDA)
    monkeypatch.setattr(numba_prim, "numba_imports", lambda: False)
    with pytest.raises(ConfigurationError, match=r"needs Numba.*hf-relrep\[fast\]"):
        death_times(torch.zeros(3, 2), backend="numba-prim")


@needs_numba
def test_a_named_numba_prim_runs_even_where_the_env_var_switches_auto_off(monkeypatch):
    monkeypatch.setenv(numba_prim.ENV_VAR, "0")
    calls = []
    original = NUMBA_PRIM.prim_edges
    monkeypatch.setattr(NUMBA_PRIM, "prim_edges", lambda sq: calls.append(sq.shape) or original(sq))
    death_times(random_cloud(3, 4, 3), backend="auto")
    assert calls == []
    death_times(random_cloud(3, 4, 3), backend="numba-prim")
    assert calls == [(1, 4, 4)]


def test_torch_is_a_deprecated_name_of_auto_that_warns_at_the_callers_line():
    points = random_cloud(4, 3, 10, 2)
    with pytest.warns(FutureWarning, match="backend='torch' is deprecated.*'auto'") as record:
        deaths = death_times(points, backend="torch")
    assert record[0].filename == __file__
    torch.testing.assert_close(deaths, death_times(points))
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.warns(FutureWarning, match="backend='torch'") as record:
        loss = densification_loss(points[0, :6], labels, beta=0.5, backend="torch")
    assert record[0].filename == __file__
    torch.testing.assert_close(loss, densification_loss(points[0, :6], labels, beta=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        death_times(points, backend="auto")  # the new default: no warning


@pytest.mark.parametrize("n", [3, 16, 64])
def test_every_backend_finds_a_spanning_tree_even_with_ties(n):
    points = tied_cloud(4, 5, n, 2)
    ((u, v),), _ = minimum_spanning_edges([points])  # the batched rounds
    assert u.shape == v.shape == (5, n - 1) and bool((u < v).all())
    assert_spanning_trees(u, v, n)
    gram, norms = centred_gram(points)
    sq = (norms.unsqueeze(2) + norms.unsqueeze(1) - 2 * gram).clamp_min(0).float().numpy()
    rows = sq.reshape(-1, n)
    batched = np.sort(sq[np.arange(5)[:, None], u.numpy(), v.numpy()], 1)
    prims = [NUMPY_PRIM] + ([NUMBA_PRIM] if numba_prim.numba_imports() else [])
    for prim in prims:  # Prim on the host, in NumPy rounds and compiled: flat indices g·n + i
        u, v = prim.prim_edges(sq)
        assert u.shape == v.shape == (5, n - 1)
        assert ((u // n) == np.arange(5)[:, None]).all() and ((v // n) == np.arange(5)[:, None]).all()
        assert_spanning_trees(u % n, v % n, n)
        np.testing.assert_array_equal(np.sort(rows[u, v % n], 1), batched)  # trees of the same total length


@pytest.mark.parametrize("backend", backend_params(auto=False))
def test_the_deviation_loss_of_every_backend_equals_the_one_from_its_death_times(backend):
    points = random_cloud(12, 4, 10, 3).requires_grad_(True)
    valid = torch.tensor([True, False, True, True])
    chosen = BACKENDS[backend]

    def loss(x: torch.Tensor) -> torch.Tensor:
        (loss,), (lengths,) = dispatch.deviation_losses([x], [0.7], valid, backend=chosen)
        assert not lengths.requires_grad and lengths.shape == (4, 9)
        return loss

    expected = sum((death_times(points[g], backend=backend) - 0.7).abs().sum() for g in (0, 2, 3))
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

    monkeypatch.setattr(numba_prim.importlib.util, "find_spec", lambda name: object())  # "installed"
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    numba_prim.numba_imports.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="does not import.*NumPy instead"):
            assert not numba_prim.numba_available()
        assert auto(16) == "numpy-prim"
    finally:
        numba_prim.numba_imports.cache_clear()
    monkeypatch.setenv(numba_prim.ENV_VAR, "0")
    assert not numba_prim.numba_available()  # switched off: not even tried


def test_importing_loads_neither_numba_nor_gudhi_and_the_env_var_keeps_numba_out():
    code = (
        "import sys, torch; from hf_relrep.topology.dispatch import BACKENDS; "
        "print(sorted({'numba', 'gudhi'} & set(sys.modules)), BACKENDS['auto'].select(16, torch.device('cpu')).name, "
        "'numba' in sys.modules)"
    )
    environment = {**os.environ, numba_prim.ENV_VAR: "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert result.stdout.split() == ["[]", "numpy-prim", "False"]
