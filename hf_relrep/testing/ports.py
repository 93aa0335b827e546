"""Ports on 127.0.0.1 reserved for a local hub: bound (so nobody else takes them) but not listening.

A reserved port refuses connections until a :class:`~hf_relrep.testing.LocalHub` takes its socket over, so
``HF_ENDPOINT`` can point at it before any server runs: a stray request is refused instead of reaching huggingface.co.
"""

import atexit
import socket
import threading

from .protocol import HOST


_reserved: dict[int, socket.socket] = {}
_reserved_lock = threading.Lock()
_close_at_exit_registered = False


def bind(port: int) -> socket.socket:
    """A TCP socket bound to ``(127.0.0.1, port)`` (0: a free port), not listening yet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def reserve(sock: socket.socket | None = None) -> int:
    """Keep ``sock`` (a new socket on a free port when ``None``) bound until :func:`take` or :func:`release`.

    Returns:
        Its port.
    """
    global _close_at_exit_registered
    sock = sock if sock is not None else bind(0)
    port = sock.getsockname()[1]
    with _reserved_lock:
        _reserved[port] = sock
        if not _close_at_exit_registered:
            atexit.register(_release_all)
            _close_at_exit_registered = True
    return port


def take(port: int) -> socket.socket | None:
    """The reserved socket of ``port``, no longer reserved (the caller owns it), or ``None`` if it is not reserved."""
    with _reserved_lock:
        return _reserved.pop(port, None)


def release(port: int) -> None:
    """Close the reserved socket of ``port``, if any: the port is free for anybody again."""
    sock = take(port)
    if sock is not None:
        sock.close()


def _release_all() -> None:
    with _reserved_lock:
        for sock in _reserved.values():
            sock.close()
        _reserved.clear()
