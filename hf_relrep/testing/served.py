"""What a request handler sees of the hub that serves it: the `ServedHub` and `HubServer` protocols.

The HTTP layer (:mod:`.handler`, :mod:`.reading`, :mod:`.writing`, :mod:`.server`) is written against these;
:class:`~hf_relrep.testing.hub.LocalHub` and :class:`~hf_relrep.testing.server.Server` satisfy them. They sit below
both, so a handler needs neither the server that routes to it nor the hub that owns that server.
"""

import socket
from typing import Protocol, runtime_checkable

from .faults import Faults
from .protocol import RequestRecord
from .storage import HubStorage


@runtime_checkable
class ServedHub(Protocol):
    """The state a request reads and writes, and the crash a fault can ask for."""

    storage: HubStorage
    token: str | None
    user: str
    anonymous_read: bool
    lfs_threshold: int
    faults: Faults
    requests: list[RequestRecord]
    upload_key: str

    @property
    def endpoint(self) -> str:
        """Base URL of the server, e.g. ``"http://127.0.0.1:43117"``."""
        ...

    def crash(self, httpd: "HubServer", connection: socket.socket) -> None:
        """Die like a killed process, from the request thread that handles ``connection``."""
        ...


@runtime_checkable
class HubServer(Protocol):
    """The HTTP server a handler runs in: it knows its hub."""

    hub: ServedHub


__all__ = ["HubServer", "ServedHub"]
