"""The plumbing of one request to a local hub: reading the body, sending answers and errors, authentication.

The endpoints are in :mod:`.reading` and :mod:`.writing`, the routing in :mod:`.server`.
"""

import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from .protocol import CHUNK, INVALID_CREDENTIALS, HubError, RequestRecord
from .served import HubServer, ServedHub
from .storage import Repo


logger = logging.getLogger(__name__)


class BaseHandler(BaseHTTPRequestHandler):
    """One request (HTTP/1.0: one request per connection): body, answers, authentication, dropped connections."""

    server: HubServer
    protocol_version = "HTTP/1.0"
    server_version = "hf-relrep-LocalHub/1"
    timeout = 60  # a silent client cannot block stop() forever
    authed = False
    _body_read = False

    @property
    def hub(self) -> ServedHub:
        return self.server.hub

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        self.hub.requests.append(RequestRecord(self.command, self.path, status))
        logger.debug("LocalHub %s %s -> %s", self.command, self.path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("LocalHub: " + format, *args)

    # ------------------------------------------------------------------------------------------------ request body

    def _iter_body(self) -> Iterator[bytes]:
        """The request body, piece by piece (``Content-Length`` or chunked transfer encoding)."""
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(3)
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, size: int) -> Iterator[bytes]:
        while size > 0:
            data = self.rfile.read(min(size, CHUNK))
            if not data:
                raise HubError(400, "Request body shorter than announced")
            size -= len(data)
            yield data

    def _body(self) -> bytes:
        return b"".join(self._iter_body())

    def _json_body(self) -> Any:
        body = self._body()
        try:
            return json.loads(body or b"{}")
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from e

    def _drain(self) -> None:
        """Read an unread request body, so that closing the socket does not reset the answer in flight."""
        if not self._body_read:
            with contextlib.suppress(Exception):
                for _ in self._iter_body():
                    pass

    # ------------------------------------------------------------------------------------------------ answers

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._drain()
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self._drain()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, error: HubError) -> None:
        headers = {"X-Error-Message": error.message.encode("ascii", "replace").decode().replace("\n", " ")}
        if error.code:
            headers["X-Error-Code"] = error.code
        headers.update(error.headers)
        self._send_json({"error": error.detail or error.message}, error.status, headers)

    def _drop(self, stop_server: bool) -> None:
        self._drain()
        self.close_connection = True
        self.hub.requests.append(RequestRecord(self.command, self.path, 0))
        if stop_server:
            self.hub.crash(self.server, self.connection)
        else:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------------------------------------ auth

    def _authenticate(self, route_needs_auth: bool) -> None:
        """Set ``self.authed``; a wrong token, or no token where one is needed, is a 401."""
        token = self.hub.token
        header = self.headers.get("Authorization", "")
        sent = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None:
            self.authed = True
        elif sent is None:
            self.authed = False
        elif secrets.compare_digest(sent.encode(), token.encode()):
            self.authed = True
        else:
            detail = f"{INVALID_CREDENTIALS}: the bearer token is not the one this LocalHub was started with"
            raise HubError(401, INVALID_CREDENTIALS, detail=detail)
        if route_needs_auth and not self.authed and not self.hub.anonymous_read:
            raise HubError(401, "This LocalHub needs a token for every request (anonymous_read=False)")

    def _require_write(self) -> None:
        if not self.authed:
            raise HubError(401, "You must be authenticated to write to this LocalHub: pass the token it was given")

    def _open(self, repo_type: str, namespace: str, name: str, *, write: bool = False) -> Repo:
        """An existing repo the request may see (and write to, with ``write=True``); others are 404 or 401."""
        if write:
            self._require_write()
        repo = self.hub.storage.repo(repo_type, namespace, name)
        if not repo.exists() or (repo.meta()["private"] and not self.authed):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo
