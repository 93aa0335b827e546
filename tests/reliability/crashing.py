"""Kill a child process at a chosen instant of a write: after its k-th file-system mutation, or after a delay.

`run_until_step(action, k)` forks; the child counts every call that changes the file system (open for writing, mkdir,
rename, replace, link, unlink, rmdir, the atomic exchange, safetensors writes) and dies with ``os._exit`` just before
the k-th one, as a ``kill -9`` there would leave things. `count_steps(action)` runs it to the end and returns how many
mutations a complete write makes, so a sweep can visit every instant between two mutations. `run_killed_after(action,
seconds)` sends a real SIGKILL after a delay.
"""

import builtins
import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


CRASHED = 99
_MUTATORS = ("rename", "replace", "link", "symlink", "mkdir", "unlink", "remove", "rmdir")


def _install_counter(limit: int, report_fd: int | None = None) -> None:
    import safetensors.torch
    import transformers.modeling_utils

    from hf_relrep.utils import files

    state = {"count": 0}

    def step() -> None:
        state["count"] += 1
        if report_fd is not None:
            os.write(report_fd, b".")
        if state["count"] > limit:
            os._exit(CRASHED)

    def counted(function):
        def wrapper(*args, **kwargs):
            step()
            return function(*args, **kwargs)

        return wrapper

    for name in _MUTATORS:
        setattr(os, name, counted(getattr(os, name)))
    original_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            step()
        return original_open(file, mode, *args, **kwargs)

    builtins.open = open_
    files._exchange = counted(files._exchange)
    transformers.modeling_utils.safe_save_file = counted(transformers.modeling_utils.safe_save_file)
    safetensors.torch.save_file = counted(safetensors.torch.save_file)


def wait_child(pid: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"child {pid} hung")
        time.sleep(0.005)


def _child(action: Callable[[], None], limit: int, report_fd: int | None = None) -> None:
    code = 1
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null), contextlib.redirect_stdout(null):
            _install_counter(limit, report_fd)
            action()
        code = 0
    except BaseException:  # noqa: BLE001 - the parent only reads the exit status
        code = 1
    finally:
        os._exit(code)


def run_until_step(action: Callable[[], None], step: int) -> int:
    """Run `action` in a forked child that dies just before its `step`-th mutation (0: before the first).

    Returns:
        The child's exit status: `CRASHED`, or 0 when `action` finished first (1 if it raised).
    """
    pid = os.fork()
    if pid == 0:
        _child(action, step)
    return wait_child(pid)


def count_steps(action: Callable[[], None]) -> int:
    """How many mutations `action` makes when it runs to the end (in a child: nothing of the parent changes)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(action, 10**9, write_fd)
    os.close(write_fd)
    count = 0
    while chunk := os.read(read_fd, 4096):
        count += len(chunk)
    os.close(read_fd)
    assert wait_child(pid) == 0, "the write failed without any crash"
    return count


def run_killed_after(action: Callable[[], None], seconds: float) -> int:
    """Run `action` in a forked child and SIGKILL it after `seconds` (if it is still running)."""
    pid = os.fork()
    if pid == 0:
        _child(action, 10**9)
    time.sleep(seconds)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_child(pid)


def snapshot(folder: str | os.PathLike) -> dict[str, str] | None:
    """``{relative path: sha256}`` of every file under `folder` (None when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(folder: str | os.PathLike) -> list[str]:
    """Temporaries hf-relrep left beside `folder`."""
    folder = Path(folder)
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.hf-"))
