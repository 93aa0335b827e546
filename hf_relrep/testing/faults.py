"""Fault injection: failures a local hub produces on purpose (a commit cut off midway, bad download bytes)."""

import threading
from dataclasses import dataclass
from typing import Literal


DownloadFaultKind = Literal["corrupt", "truncate", "disconnect"]


@dataclass
class CommitFault:
    """A commit armed to fail: ``after_files`` files are stored, then the connection is dropped."""

    after_files: int
    stop_server: bool
    repo_id: str | None


@dataclass
class DownloadFault:
    """Bad bytes armed for the next ``times`` downloads of ``path``."""

    path: str
    kind: DownloadFaultKind
    times: int
    repo_id: str | None


class Faults:
    """Failures a :class:`~hf_relrep.testing.LocalHub` injects on purpose, each armed for the next matching
    request(s).

    Reached as ``hub.faults``; thread-safe. Faults survive :meth:`LocalHub.stop`/:meth:`LocalHub.start` and are
    consumed when they fire.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commits: list[CommitFault] = []
        self._downloads: list[DownloadFault] = []

    def fail_next_commit(self, *, after_files: int = 0, stop_server: bool = True, repo_id: str | None = None) -> None:
        """Break the next commit: store its first ``after_files`` files, then drop the connection unanswered.

        The branch is never moved, so the repo stays at its last complete commit; the client's commit call raises
        (``httpx2.RemoteProtocolError``: the commit POST is not retried by huggingface_hub). Files uploaded through
        LFS before the commit call are stored already, as on the real Hub, and stay invisible.

        Args:
            after_files: How many files of the commit (regular or LFS) are stored before the failure.
            stop_server: Also stop the server, as if its process were killed: later requests are refused until
                :meth:`LocalHub.start` is called again (same port, same storage).
            repo_id: Only for commits to this repo (``"namespace/name"``); any repo when ``None``.
        """
        if after_files < 0:
            raise ValueError(f"after_files must be >= 0, got {after_files}")
        with self._lock:
            self._commits.append(CommitFault(after_files, stop_server, repo_id))

    def fail_next_download(
        self,
        path: str,
        *,
        kind: DownloadFaultKind = "corrupt",
        times: int = 1,
        repo_id: str | None = None,
    ) -> None:
        """Serve bad bytes for the next ``times`` downloads (GET, not HEAD) of the file ``path``.

        Args:
            path: Path of the file in the repo.
            kind: ``"corrupt"``: the right number of bytes, some of them inverted (the middle byte of the file and
                the 15 after it). ``"truncate"``: half of the body, with a ``Content-Length`` that says so.
                ``"disconnect"``: the full ``Content-Length`` is announced, half of the body is sent, then the
                connection is closed.
            times: Number of downloads affected (the client retries a cut connection up to 5 times).
            repo_id: Only for this repo (``"namespace/name"``); any repo when ``None``.
        """
        if kind not in ("corrupt", "truncate", "disconnect"):
            raise ValueError(f"kind must be 'corrupt', 'truncate' or 'disconnect', got {kind!r}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._downloads.append(DownloadFault(path, kind, times, repo_id))

    def clear(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._commits.clear()
            self._downloads.clear()

    @property
    def pending(self) -> int:
        """Number of faults armed and not fired yet."""
        with self._lock:
            return len(self._commits) + len(self._downloads)

    def take_commit(self, repo_id: str) -> CommitFault | None:
        """The fault armed for the next commit to ``repo_id``, disarmed; ``None`` when none is (the server calls
        this once per commit)."""
        with self._lock:
            for fault in self._commits:
                if fault.repo_id in (None, repo_id):
                    self._commits.remove(fault)
                    return fault
        return None

    def take_download(self, repo_id: str, path: str) -> DownloadFaultKind | None:
        """The kind of bad bytes to serve for this download of ``path`` (one use of the fault), or ``None`` (the
        server calls this once per GET of a file)."""
        with self._lock:
            for fault in self._downloads:
                if fault.path == path and fault.repo_id in (None, repo_id):
                    fault.times -= 1
                    if fault.times == 0:
                        self._downloads.remove(fault)
                    return fault.kind
        return None
