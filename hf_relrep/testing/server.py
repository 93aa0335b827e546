"""The HTTP server of a local hub: routing of Hub protocol URLs to their endpoints, one thread per connection."""

import contextlib
import logging
import socket
import threading
from http.server import HTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .protocol import HOST, REPO_TYPES, DropConnection, HubError
from .reading import ReadEndpoints
from .served import ServedHub
from .writing import WriteEndpoints


logger = logging.getLogger(__name__)


class Handler(ReadEndpoints, WriteEndpoints):
    """Routes one request (HTTP/1.0: one request per connection) to the Hub endpoint it targets."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        segments = url.path.split("/")[1:]
        query = parse_qs(url.query)
        self.authed = False
        self._body_read = False
        try:
            if segments[:2] in (["api", "agent-harnesses"], ["api", "telemetry"]) or segments[:1] == ["_lfs"]:
                self._authenticate(route_needs_auth=False)
                self._route_open(method, segments, query)
            else:
                self._authenticate(route_needs_auth=True)
                if segments[:1] == ["api"]:
                    self._route_api(method, segments[1:], query)
                else:
                    self._route_repo_url(method, segments)
        except DropConnection as drop:
            self._drop(drop.stop_server)
        except HubError as error:
            self._send_error(error)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:
            logger.exception("LocalHub: internal error on %s %s", method, self.path)
            self._send_error(HubError(500, f"LocalHub internal error: {type(e).__name__}: {e}"))

    def _route_open(self, method: str, segments: list[str], query: dict[str, list[str]]) -> None:
        if segments[:2] == ["api", "agent-harnesses"]:
            self._send_json({"standardEnvVars": [], "harnesses": {}})
        elif segments[:2] == ["api", "telemetry"]:
            self._send_json({})
        elif segments[:2] == ["_lfs", "upload"] and len(segments) == 3 and method == "PUT":
            self._lfs_upload(segments[2], query)
        elif segments[:2] == ["_lfs", "verify"] and len(segments) == 3 and method == "POST":
            self._lfs_verify(segments[2])
        else:
            raise HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")

    def _route_api(self, method: str, rest: list[str], query: dict[str, list[str]]) -> None:
        route = (method, *rest[:2])
        if route == ("GET", "whoami-v2"):
            self._whoami()
        elif route == ("POST", "repos", "create"):
            self._create_repo()
        elif route == ("DELETE", "repos", "delete"):
            self._delete_repo()
        elif route == ("POST", "validate-yaml"):
            self._validate_yaml()
        elif rest and rest[0] in REPO_TYPES:
            if len(rest) < 3:
                raise HubError(404, "Repository not found", "RepoNotFound")
            repo_type, namespace, name = REPO_TYPES[rest[0]], unquote(rest[1]), unquote(rest[2])
            self._route_repo_api(method, repo_type, namespace, name, [unquote(s) for s in rest[3:]], query)
        else:
            raise HubError(404, f"LocalHub does not serve {method} /api/{'/'.join(rest)}")

    def _route_repo_api(
        self, method: str, repo_type: str, namespace: str, name: str, action: list[str], query: dict[str, list[str]]
    ) -> None:
        kind = action[0] if action else ""
        if method == "GET" and (not action or (kind == "revision" and len(action) == 2)):
            self._repo_info(self._open(repo_type, namespace, name), action[1] if action else "main")
        elif method == "GET" and kind == "tree" and len(action) >= 2:
            repo = self._open(repo_type, namespace, name)
            self._tree(repo, action[1], "/".join(action[2:]).strip("/"), query)
        elif method == "POST" and kind == "paths-info" and len(action) == 2:
            self._paths_info(self._open(repo_type, namespace, name), action[1])
        elif method == "GET" and kind == "refs" and len(action) == 1:
            self._refs(self._open(repo_type, namespace, name))
        elif method == "GET" and kind == "commits" and len(action) == 2:
            self._commits(self._open(repo_type, namespace, name), action[1])
        elif method in ("POST", "DELETE") and kind in ("branch", "tag") and len(action) == 2:
            repo = self._open(repo_type, namespace, name, write=True)
            self._ref_change(repo, method, kind, action[1])
        elif method == "POST" and kind == "preupload" and len(action) == 2:
            self._preupload(self._open(repo_type, namespace, name, write=True), action[1], query)
        elif method == "POST" and kind == "commit" and len(action) == 2:
            self._commit(self._open(repo_type, namespace, name, write=True), action[1], query)
        elif method == "PUT" and kind == "settings" and len(action) == 1:
            self._settings(self._open(repo_type, namespace, name, write=True))
        else:
            raise HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")

    def _route_repo_url(self, method: str, segments: list[str]) -> None:
        repo_type = "model"
        if segments and segments[0] in REPO_TYPES and segments[0] != "models":
            repo_type, segments = REPO_TYPES[segments[0]], segments[1:]
        if len(segments) < 2 or segments[1] == "resolve":
            raise HubError(404, "Repository not found", "RepoNotFound")  # ids without a namespace do not exist
        namespace, name = unquote(segments[0]), unquote(segments[1])
        if method in ("GET", "HEAD") and len(segments) >= 5 and segments[2] == "resolve":
            path = unquote("/".join(segments[4:]))
            self._resolve(self._open(repo_type, namespace, name), unquote(segments[3]), path, method)
        elif method == "POST" and name.endswith(".git") and segments[2:] == ["info", "lfs", "objects", "batch"]:
            self._lfs_batch(self._open(repo_type, namespace, name.removesuffix(".git"), write=True))
        else:
            raise HubError(404, f"LocalHub does not serve {method} {urlsplit(self.path).path}")


class Server(HTTPServer):
    """HTTPServer on a given socket, one thread per connection, all tracked so that stop() closes and joins them."""

    def __init__(self, hub: ServedHub, sock: socket.socket) -> None:
        super().__init__((HOST, hub.port), Handler, bind_and_activate=False)
        self.socket.close()  # replaced by the reserved, already bound socket
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = HOST, self.server_address[1]
        self.hub = hub
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._process, args=(request, client_address), name=f"LocalHub:{self.server_port}:request"
        )
        thread.daemon = True  # never keeps the interpreter alive; close_all() joins it
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def close_all(self) -> None:
        """After shutdown(): close the listener, cut every connection, join every request thread but the caller."""
        self.server_close()
        with self._connections_lock:
            connections = dict(self._connections)
        current = threading.current_thread()
        for thread, conn in connections.items():
            if thread is not current:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in connections:
            if thread is not current:
                thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("LocalHub: error while handling a request from %s", client_address, exc_info=True)
