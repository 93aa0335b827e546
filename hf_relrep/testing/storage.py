"""Storage of a local hub: blobs by sha256, one JSON snapshot per commit, refs swapped atomically.

Layout under the root folder::

    blobs/<sha256[:2]>/<sha256>                          file contents (regular and LFS alike)
    repos/<type>s/<namespace>/<name>/repo.json           settings (private, creation date)
    repos/<type>s/<namespace>/<name>/refs.json           branches and tags -> commit sha; its presence = repo exists
    repos/<type>s/<namespace>/<name>/commits/<sha>.json  one snapshot per commit: the whole tree, parents, message

A commit stores its blobs and its snapshot first, then replaces ``refs.json``: readers see the old commit or the new
one, never a part (atomic against a killed process, not against power loss: no fsync).
"""

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..utils.hashing import git_blob_sha1
from .protocol import DEFAULT_GITATTRIBUTES, NAME_RE, SHA_RE, URL_PREFIXES, HubError


def now() -> str:
    """The current UTC time as the Hub writes it (``2024-01-31T12:00:00.000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Repo:
    """One repo on disk: ``repo.json`` (settings), ``refs.json`` (branches, tags), ``commits/<sha>.json``."""

    def __init__(self, root: Path, repo_type: str, namespace: str, name: str):
        self.type = repo_type
        self.namespace = namespace
        self.name = name
        self.id = f"{namespace}/{name}"
        self.dir = root / "repos" / f"{repo_type}s" / namespace / name

    @property
    def url_path(self) -> str:
        return f"{URL_PREFIXES[self.type]}{self.id}"

    def exists(self) -> bool:
        return (self.dir / "refs.json").is_file()

    def meta(self) -> dict[str, Any]:
        return json.loads((self.dir / "repo.json").read_text())

    def set_meta(self, meta: dict[str, Any]) -> None:
        atomic_write(self.dir / "repo.json", json.dumps(meta, indent=1).encode())

    def refs(self) -> dict[str, dict[str, str]]:
        return json.loads((self.dir / "refs.json").read_text())

    def set_refs(self, refs: dict[str, dict[str, str]]) -> None:
        atomic_write(self.dir / "refs.json", json.dumps(refs, indent=1).encode())

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.dir / "commits" / f"{sha}.json").read_text())

    def resolve(self, revision: str) -> str:
        """Commit sha of a branch, a tag (also as ``refs/heads/...``/``refs/tags/...``) or a full commit sha."""
        refs = self.refs()
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if name in refs["branches"]:
            return refs["branches"][name]
        if name in refs["tags"]:
            return refs["tags"][name]
        if SHA_RE.match(revision) and (self.dir / "commits" / f"{revision}.json").is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def write_commit(
        self, tree: dict[str, dict[str, Any]], parents: list[str], title: str, message: str, author: str
    ) -> str:
        """Store a commit snapshot (not yet reachable from any ref) and return its sha."""
        body = {"parents": parents, "title": title, "message": message, "date": now(), "authors": [author]}
        body["tree"] = tree
        # A nonce makes every commit id unique, even for identical content pushed twice in the same millisecond.
        canonical = json.dumps({**body, "nonce": uuid.uuid4().hex}, sort_keys=True).encode()
        sha = hashlib.sha1(canonical).hexdigest()
        atomic_write(self.dir / "commits" / f"{sha}.json", json.dumps({"id": sha, **body}, indent=1).encode())
        return sha

    def history(self, sha: str) -> Iterator[dict[str, Any]]:
        """Commits reachable from ``sha``, newest first (first parent only)."""
        while sha:
            commit = self.commit(sha)
            yield commit
            sha = commit["parents"][0] if commit["parents"] else ""


class HubStorage:
    """The folder behind a local hub: its repos, its blob store, and one lock per repo for ref updates.

    Args:
        root: Storage folder (created if needed). One server per storage folder: the locks are in this process.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._repo_locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def repo(self, repo_type: str, namespace: str, name: str) -> Repo:
        """The repo with this id (it may not exist yet); an invalid id is a 400."""
        if not (NAME_RE.match(namespace) and NAME_RE.match(name)) or ".." in namespace + name:
            raise HubError(400, f"Invalid repo id: {namespace}/{name}")
        return Repo(self.root, repo_type, namespace, name)

    def lock(self, repo: Repo) -> threading.Lock:
        """The lock held while reading and swapping the refs of ``repo``."""
        with self._locks_lock:
            return self._repo_locks.setdefault(repo.dir, threading.Lock())

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` (once: blobs are content-addressed) and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha256)
        if not path.is_file():
            atomic_write(path, data)
        return sha256

    def incoming_path(self, oid: str) -> Path:
        """A fresh temporary path for an LFS upload in progress (moved into the blob store once checked)."""
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{oid}.{uuid.uuid4().hex}"

    def create_repo(self, repo: Repo, private: bool, author: str) -> None:
        """Create a repo with the Hub's initial commit (a default ``.gitattributes``) on ``main``."""
        with self.lock(repo):
            if repo.exists():
                raise HubError(409, f"You already created this {repo.type} repo: {repo.id}")
            if repo.dir.exists():  # leftovers of a creation killed half-way
                shutil.rmtree(repo.dir)
            repo.set_meta({"private": private, "createdAt": now(), "type": repo.type})
            data = DEFAULT_GITATTRIBUTES.encode()
            sha256 = self.put_blob(data)
            entry = {"oid": git_blob_sha1(data), "size": len(data), "sha256": sha256, "lfs": False}
            sha = repo.write_commit({".gitattributes": entry}, [], "initial commit", "", author)
            repo.set_refs({"branches": {"main": sha}, "tags": {}})  # refs.json last: its presence = repo exists

    def delete_repo(self, repo: Repo) -> None:
        """Delete a repo: it is gone at once (``refs.json`` first), even if removing its folder is interrupted."""
        with self.lock(repo):
            if not repo.exists():
                raise HubError(404, "Repository not found", "RepoNotFound")
            (repo.dir / "refs.json").unlink()
            shutil.rmtree(repo.dir)
