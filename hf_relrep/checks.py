"""Input checks that never block an accelerator: raised at once on CPU, deferred on CUDA.

A check such as "the latents are finite" needs the value of a tensor on the host. On CPU that costs nothing; on a
GPU, reading it (``bool(tensor)``, ``.item()``) waits for every queued kernel and stalls the training step. So on a
non-CPU device :func:`ensure` only queues the check: the flag is copied to pinned host memory asynchronously, and the
error is raised by a later call, as soon as the device has got there (polled without waiting), or by
:func:`raise_deferred_errors`, which TopoTrainer calls at every logging step. The error is the same typed error, with
a note that it was detected late.

Example:
    >>> import torch
    >>> from hf_relrep.checks import check_finite
    >>> check_finite(torch.tensor([1.0, float("nan")]), "latents")
    Traceback (most recent call last):
    ...
    hf_relrep.errors.NonFiniteError: latents contain NaN or infinite values; ...
"""

import contextlib
from collections import deque
from collections.abc import Callable, Iterator

import torch

from .errors import NonFiniteError, RelRepError


_pending: deque[tuple[torch.Tensor, object, Callable[[], RelRepError]]] = deque()
_force_deferred = False


def _deferred(device: torch.device) -> bool:
    return _force_deferred or device.type != "cpu"


def ensure(condition: torch.Tensor, error: Callable[[], RelRepError]) -> None:
    """Raise ``error()`` unless the 0-dim boolean tensor ``condition`` is true, without blocking an accelerator.

    Args:
        condition: a 0-dim boolean tensor on any device.
        error: builds the error to raise (only called when the check fails, so it may inspect tensors then).

    Raises:
        RelRepError: ``error()``, at once on CPU; on another device, from a later :func:`ensure` or
            :func:`raise_deferred_errors` call once the device has computed ``condition``.
    """
    if not _deferred(condition.device):
        if not bool(condition):
            raise error()
        return
    _raise_ready(block=False)
    if condition.device.type == "cuda":
        host = condition.to("cpu", non_blocking=True)  # into pinned memory, ordered after the kernels that made it
        event = torch.cuda.Event()
        event.record()
    else:
        host, event = condition, None
    _pending.append((host, event, error))


def ensure_on_host(condition: bool, error: Callable[[], RelRepError]) -> None:
    """:func:`ensure` for a condition already known on the host (a CPU computation): raises ``error()`` at once when it
    is false, or, inside :func:`deferred_checks`, queues it like any deferred check (and, like :func:`ensure`, raises
    one that failed earlier). Costs nothing when it holds and nothing is pending."""
    if not condition or _pending:
        ensure(torch.tensor(condition), error)


def check_finite(
    tensor: torch.Tensor, name: str, hint: str = "check the model's outputs (e.g. a fp16 overflow)."
) -> None:
    """Raise :class:`NonFiniteError` if ``tensor`` holds NaN or infinite values (deferred on accelerators, see
    :func:`ensure`)."""
    ensure(
        torch.isfinite(tensor).all(),
        lambda: NonFiniteError(f"{name} contain NaN or infinite values; {hint}"),
    )


def raise_deferred_errors() -> None:
    """Wait for every deferred check and raise the first that failed (TopoTrainer calls this at each logging step)."""
    _raise_ready(block=True)


def _raise_ready(*, block: bool) -> None:
    while _pending:
        host, event, error = _pending[0]
        if event is not None and not block and not event.query():
            return
        if event is not None:
            event.synchronize()
        _pending.popleft()
        if not bool(host):
            _pending.clear()
            raised = error()
            if hasattr(raised, "add_note"):  # Python >= 3.11
                raised.add_note("(detected on the device after the call that produced it had returned)")
            raise raised


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Defer the checks on every device, CPU included, inside the block; the pending ones are raised on exit.

    What TopoTrainer's training steps get on a GPU, made visible on CPU (tests, or a CPU loop that wants the same
    behaviour)."""
    global _force_deferred
    previous, _force_deferred = _force_deferred, True
    try:
        yield
    finally:
        _force_deferred = previous
    raise_deferred_errors()
