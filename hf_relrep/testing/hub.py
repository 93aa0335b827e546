"""`LocalHub`: a Hub-protocol HTTP server on 127.0.0.1 for tests, its lifecycle (start, stop, crash, restart).

Authentication: with ``token=None`` (default) every request is accepted and private repos are visible to everybody.
With ``token="..."``, a request carrying another bearer token gets 401 ``Invalid credentials in Authorization
header`` (``HfHubHTTPError``); writes without a token get 401; private repos answer 404 ``RepoNotFound``
(``RepositoryNotFoundError``) to anonymous requests; public repos stay readable anonymously unless
``anonymous_read=False``, which makes every request need the token.

Fault injection (``hub.faults``, see :class:`~hf_relrep.testing.faults.Faults`): ``fail_next_commit`` drops the
connection in the middle of the next commit (after storing some of its files, before the branch moves) and can stop
the server as if it were killed; ``fail_next_download`` serves corrupted, truncated or cut-off bytes for a file.

What the real client detects (huggingface_hub 2.4, plain HTTP download): the body size against the size announced by
the HEAD request (``OSError: Consistency check failed``), and a cut connection, which it resumes with a ``Range``
request. It does not hash what it downloads: a corrupted body of the right size is accepted silently, for regular
and LFS files alike (for LFS files the ETag is the sha256 of the content, so a caller can check it).

Limits: no pull requests (``create_pr=True`` is refused with a 400), no Xet, no gated repos, no pagination (one
page), atomicity against a killed process but not against power loss (no fsync), one server per storage folder.
"""

import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import threading
import weakref
from pathlib import Path

from . import ports
from .faults import Faults
from .protocol import DEFAULT_LFS_THRESHOLD, HOST, RequestRecord
from .server import Server
from .storage import HubStorage


logger = logging.getLogger(__name__)


class LocalHub:
    """A Hub-protocol HTTP server on 127.0.0.1, backed by a folder, for tests with the real Hub clients.

    Args:
        root: Storage folder (created if needed). ``None``: a temporary folder removed when the hub is closed or
            garbage collected. Restarting a hub on the same folder finds every repo and commit again.
        token: When set, the bearer token clients must send for writes, for private repos (and for everything with
            ``anonymous_read=False``); a wrong token always gets 401. Can be changed while the server runs.
        user: Name returned by ``whoami`` and namespace of repos created without one.
        port: Port to bind on 127.0.0.1; 0 picks a free one at :meth:`start`. A port reserved with
            :meth:`reserve_endpoint` is taken over without a window where another process could grab it.
        anonymous_read: With a token set, whether public repos can be read without it (as on huggingface.co).
        lfs_threshold: Files this big or bigger are uploaded through Git LFS (smaller ones too when binary or
            matched by ``.gitattributes``).

    Example:
        ```python
        from huggingface_hub import HfApi

        from hf_relrep.testing import LocalHub

        with LocalHub() as hub:
            api = HfApi(endpoint=hub.endpoint)
            api.create_repo("test-user/demo")
            api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="test-user/demo")
            assert [s.rfilename for s in api.model_info("test-user/demo").siblings] == [".gitattributes", "a.txt"]
        ```
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        token: str | None = None,
        user: str = "test-user",
        port: int = 0,
        anonymous_read: bool = True,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
    ) -> None:
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="hf-relrep-localhub-"))
            self._cleanup_root = weakref.finalize(self, shutil.rmtree, str(self.root), True)
        else:
            self.root = Path(root)
            self._cleanup_root = None
        self.storage = HubStorage(self.root)
        self.token = token
        self.user = user
        self.port = port
        self.anonymous_read = anonymous_read
        self.lfs_threshold = lfs_threshold
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.upload_key = secrets.token_hex(16)
        """Signs LFS upload URLs: the client PUTs them without a token."""
        self._lifecycle = threading.RLock()
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None
        self._orphans: list[threading.Thread] = []
        self._placeholder: socket.socket | None = None  # holds the port between a crash and a restart
        self._from_pool = False

    @staticmethod
    def reserve_endpoint() -> str:
        """Reserve a free port on 127.0.0.1 for a future :class:`LocalHub` and return its endpoint URL.

        The port is bound (not listening: connections are refused) until ``LocalHub(port=...)`` takes it over, so
        ``HF_ENDPOINT`` can be set before ``huggingface_hub`` is imported and before any server exists. A hub that
        took it over reserves it again when stopped; :meth:`release_endpoint` frees it.

        Returns:
            ``"http://127.0.0.1:PORT"``.
        """
        return f"http://{HOST}:{ports.reserve()}"

    @staticmethod
    def release_endpoint(endpoint: str) -> None:
        """Free the port of an endpoint given by :meth:`reserve_endpoint` (no effect while a hub serves it)."""
        ports.release(int(endpoint.rstrip("/").rsplit(":", 1)[-1]))

    @property
    def endpoint(self) -> str:
        """Base URL of the server, e.g. ``"http://127.0.0.1:43117"`` (the port is known once started)."""
        if not self.port:
            raise RuntimeError("LocalHub was created with port=0: its endpoint is known once start() has run")
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server currently accepts connections."""
        return self._httpd is not None

    def start(self) -> "LocalHub":
        """Start serving in a background thread (again after :meth:`stop` or an injected crash).

        Returns:
            The hub itself.
        """
        with self._lifecycle:
            if self._httpd is not None:
                return self
            sock, self._placeholder = self._placeholder, None  # kept by a crash: same port, same origin
            if sock is None:
                sock = ports.take(self.port) if self.port else None
                self._from_pool = sock is not None
            if sock is None:
                sock = ports.bind(self.port)
            self.port = sock.getsockname()[1]
            sock.listen(128)
            self._httpd = Server(self, sock)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"LocalHub:{self.port}",
                daemon=True,
            )
            self._thread.start()
        logger.debug("LocalHub serving %s from %s", self.endpoint, self.root)
        return self

    def stop(self) -> None:
        """Stop serving: close every connection and join every server thread. Idempotent.

        Must not be called from a request of this hub. The storage folder is kept (a later :meth:`start` serves it
        again). A port reserved with :meth:`reserve_endpoint` stays reserved; any other port is released.
        """
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None and thread is not None:
            httpd.shutdown()
            thread.join()
            httpd.close_all()
        with self._lifecycle:
            orphans, self._orphans = self._orphans, []
        for orphan in orphans:  # request threads of a crashed server, finishing their own cleanup
            orphan.join()
        with self._lifecycle:
            placeholder, self._placeholder = self._placeholder, None
            if self._from_pool and self.port:
                if placeholder is None:
                    with contextlib.suppress(OSError):
                        placeholder = ports.bind(self.port)
                if placeholder is not None:
                    ports.reserve(placeholder)
            elif placeholder is not None:
                placeholder.close()

    def close(self) -> None:
        """Stop the server and remove the storage folder if it is a temporary one."""
        self.stop()
        if self._cleanup_root is not None:
            self._cleanup_root()

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalHub({str(self.root)!r}, port={self.port}, {state})"

    def crash(self, httpd: Server, connection: socket.socket) -> None:
        """Die like a killed process, from the request thread that handles ``connection`` (fault injection).

        In this order: stop accepting, close the listener (later connections are refused, not reset), keep the port
        bound (unlistened) so that :meth:`start` reuses the endpoint, drop ``connection``, close the others.
        """
        with self._lifecycle:
            if self._httpd is not httpd:  # being stopped by somebody else
                httpd = None
            else:
                thread, self._httpd, self._thread = self._thread, None, None
                self._orphans.append(threading.current_thread())
        if httpd is not None:
            httpd.shutdown()
            if thread is not None:
                thread.join()
            httpd.socket.close()
            try:
                placeholder = ports.bind(self.port)
            except OSError:  # somebody took the port: the next start() binds another one or fails
                placeholder = None
            with self._lifecycle:
                self._placeholder = placeholder
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        if httpd is not None:
            httpd.close_all()
