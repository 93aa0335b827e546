"""The one place that decides which persistence backend computes which clouds.

Backends (:mod:`hf_relrep.topology.backends`) are registered by name in :data:`BACKENDS`, a
:class:`~hf_relrep.utils.registry.Registry` (a taken name is refused; an unknown one is answered with the list of
names). ``backend="auto"`` (the default everywhere) walks :data:`DISPATCH_CHAIN` for each size and device of cloud,
first match wins:

1. ``"numba-prim"``: CPU clouds of up to 512 points, where Numba imports and ``HF_RELREP_NUMBA`` is not ``0``
   (read on first use);
2. ``"numpy-prim"``: CPU clouds of up to 512 points;
3. ``"boruvka"``: any device, up to 2048 points.

Any other name runs that backend, or raises if it cannot take the clouds (``"numpy-prim"`` on CUDA, ``"numba-prim"``
without Numba); ``HF_RELREP_NUMBA`` only steers ``"auto"``. ``"gudhi"`` (a reference) runs only when named.
``"torch"``, the old name for "pick for me", still means ``"auto"`` and warns.

Clouds are computed together where they share a size and a device: one spanning-tree computation per ``(n, device)``.
A backend of one's own: subclass :class:`~hf_relrep.topology.backends.base.PersistenceBackend` and
``BACKENDS.register(name, backend)``; it then runs wherever ``backend=name`` is passed.
"""

import warnings
from collections.abc import Callable, Sequence

import torch

from ..errors import TopologyError
from ..utils.registry import Registry
from .backends.base import PersistenceBackend
from .backends.boruvka import BORUVKA, MAX_POINTS, dispatch_boruvka
from .backends.gudhi import GUDHI
from .backends.numba_prim import NUMBA_PRIM, dispatch_numba_prim
from .backends.numpy_prim import NUMPY_PRIM, dispatch_numpy_prim


AUTO = "auto"
# Old backend names a user may still pass, and the names they mean now.
DEPRECATED_NAMES = {"torch": AUTO}

# What "auto" tries, in order, for clouds of `n` points on `device`: the first backend returned computes them.
DISPATCH_CHAIN: tuple[Callable[[int, torch.device], PersistenceBackend | None], ...] = (
    dispatch_numba_prim,
    dispatch_numpy_prim,
    dispatch_boruvka,
)


class Auto(PersistenceBackend):
    """``"auto"``: the first backend of :data:`DISPATCH_CHAIN` that takes the clouds."""

    name = AUTO

    def select(self, n: int, device: torch.device) -> PersistenceBackend:
        """The backend of :data:`DISPATCH_CHAIN` that computes clouds of ``n`` points on ``device``.

        Raises:
            TopologyError: no backend of the chain takes clouds that large.
        """
        for dispatch in DISPATCH_CHAIN:
            backend = dispatch(n, device)
            if backend is not None:
                return backend
        raise TopologyError(
            f"death_times computes clouds of at most {MAX_POINTS} points, got {n}; split the cloud into groups "
            "(samples_per_class) or use backend='gudhi'."
        )

    def tree_lengths(self, clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
        return self.select(clouds[0].shape[1], clouds[0].device).tree_lengths(clouds, sort=sort)

    def deviation_losses(
        self, clouds: list[torch.Tensor], betas: Sequence[float], valid: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.select(clouds[0].shape[1], clouds[0].device).deviation_losses(clouds, betas, valid)


BACKENDS: Registry[PersistenceBackend] = Registry("persistence backend")
for _backend in (Auto(), BORUVKA, NUMPY_PRIM, NUMBA_PRIM, GUDHI):
    BACKENDS.register(_backend.name, _backend)


def persistence_backend(name: str, *, stacklevel: int = 3) -> PersistenceBackend:
    """The backend registered as ``name`` (``"torch"`` warns and gives ``"auto"``).

    Args:
        name: a name of :data:`BACKENDS`.
        stacklevel: where the deprecation warning points (default: the caller of the caller).

    Raises:
        ConfigurationError: ``name`` is not registered (the message lists the names).
    """
    if isinstance(name, str) and name in DEPRECATED_NAMES:
        warnings.warn(
            f"backend={name!r} is deprecated and will be removed: it means {DEPRECATED_NAMES[name]!r}, which picks "
            "a backend by device, cloud size and what is installed. Pass backend='auto' (the default), or a backend "
            f"by name: {BACKENDS.choices()}.",
            FutureWarning,
            stacklevel=stacklevel,
        )
        name = DEPRECATED_NAMES[name]
    return BACKENDS[name]


def _plan(clouds: Sequence[torch.Tensor], backend: PersistenceBackend) -> list[tuple[PersistenceBackend, list[int]]]:
    """The backend and the tensors of each ``(n, device)``, all chosen before anything is computed."""
    buckets: dict[tuple[int, torch.device], list[int]] = {}
    for s, x in enumerate(clouds):
        buckets.setdefault((x.shape[1], x.device), []).append(s)
    return [(backend.select(n, device), members) for (n, device), members in buckets.items()]


def tree_lengths(clouds: Sequence[torch.Tensor], *, backend: PersistenceBackend, sort: bool) -> list[torch.Tensor]:
    """Differentiable spanning-tree edge lengths of each ``[G_s, n_s, d_s]`` tensor of clouds, one computation per
    ``(n, device)`` (see :meth:`PersistenceBackend.tree_lengths`).

    Raises:
        ConfigurationError, TopologyError: ``backend`` cannot compute some of the clouds.
        NonFiniteError: a point is NaN or infinite (deferred on accelerators, :mod:`hf_relrep.checks`).
    """
    lengths: list = [None] * len(clouds)
    for chosen, members in _plan(clouds, backend):
        found = chosen.tree_lengths([clouds[s] for s in members], sort=sort)
        for s, w in zip(members, found, strict=True):
            lengths[s] = w
    return lengths


def deviation_losses(
    clouds: Sequence[torch.Tensor],
    betas: Sequence[float],
    valid: torch.Tensor | None,
    *,
    backend: PersistenceBackend,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""Per tensor of clouds, :math:`\sum_{g, k} |w_{gk} - \beta|` over the spanning-tree edge lengths of the rows
    that count, and the detached lengths in edge order (see :meth:`PersistenceBackend.deviation_losses`), one
    computation per ``(n, device)``.

    Raises:
        The errors of :func:`tree_lengths`.
    """
    losses: list = [None] * len(clouds)
    lengths: list = [None] * len(clouds)
    for chosen, members in _plan(clouds, backend):
        found = chosen.deviation_losses([clouds[s] for s in members], [betas[s] for s in members], valid)
        for s, loss, w in zip(members, *found, strict=True):
            losses[s], lengths[s] = loss, w
    return losses, lengths


__all__ = [
    "AUTO",
    "BACKENDS",
    "DEPRECATED_NAMES",
    "DISPATCH_CHAIN",
    "Auto",
    "deviation_losses",
    "persistence_backend",
    "tree_lengths",
]
