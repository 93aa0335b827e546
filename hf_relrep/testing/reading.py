"""Endpoints of a local hub that read: account, repo info, trees, refs, commits, file downloads (with faults)."""

import contextlib
import hashlib
import json
import re
import socket
from typing import Any
from urllib.parse import parse_qs

from .handler import BaseHandler
from .protocol import CHUNK, HubError, is_true, lfs_pointer
from .storage import Repo


class ReadEndpoints(BaseHandler):
    """The endpoints that change nothing: ``whoami``, ``validate-yaml``, repo info, tree, paths-info, refs, commits,
    and ``resolve`` (HEAD and GET of a file, with ``Range`` support and the download faults)."""

    # ------------------------------------------------------------------------------------------------ account

    def _whoami(self) -> None:
        if not self.authed:
            raise HubError(401, "Invalid user token: whoami needs the token of this LocalHub")
        user = self.hub.user
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@localhost",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}},
            }
        )

    def _validate_yaml(self) -> None:
        content = str(self._json_body().get("content", ""))
        errors: list[dict[str, str]] = []
        if content.startswith("---"):
            end = content.find("\n---", 3)
            try:
                import yaml

                metadata = yaml.safe_load(content[3:end] if end != -1 else "")
                if metadata is not None and not isinstance(metadata, dict):
                    errors.append({"message": "YAML metadata must be a mapping"})
            except ImportError:  # pragma: no cover - pyyaml is a dependency of hf-relrep
                pass
            except Exception as e:
                errors.append({"message": f"Invalid YAML metadata: {e}"})
        self._send_json({"errors": errors, "warnings": []}, 400 if errors else 200)

    # ------------------------------------------------------------------------------------------------ repos

    def _entry_json(self, path: str, entry: dict[str, Any], last_commit: dict | None) -> dict:
        item: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
        if last_commit is not None:
            item["lastCommit"] = {"id": last_commit["id"], "title": last_commit["title"], "date": last_commit["date"]}
        return item

    def _last_commit(self, repo: Repo, sha: str, path: str) -> dict[str, Any]:
        """The newest commit reachable from ``sha`` that changed ``path`` (a file or a folder prefix)."""

        def state(commit: dict[str, Any]) -> Any:
            tree = commit["tree"]
            return tree.get(path) or sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(path + "/"))

        found: dict[str, Any] | None = None
        for commit in repo.history(sha):
            if found is not None and state(commit) != state(found):
                break
            found = commit
        assert found is not None
        return found

    def _repo_info(self, repo: Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        commit, meta = repo.commit(sha), repo.meta()
        siblings = []
        for path, entry in sorted(commit["tree"].items()):
            sibling: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit["date"],
            "createdAt": meta["createdAt"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo.type == "space":
            info.update({"sdk": "static", "runtime": {"stage": "NO_APP_FILE"}})
        self._send_json(info)

    def _directories(self, tree: dict[str, Any]) -> set[str]:
        return {path.rsplit("/", i)[0] for path in tree for i in range(1, path.count("/") + 1)}

    def _folder_json(self, tree: dict[str, Any], folder: str, last_commit: dict | None) -> dict[str, Any]:
        listing = sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(folder + "/"))
        item: dict[str, Any] = {
            "type": "directory",
            "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(),
            "size": 0,
            "path": folder,
        }
        if last_commit is not None:
            item["lastCommit"] = {"id": last_commit["id"], "title": last_commit["title"], "date": last_commit["date"]}
        return item

    def _tree(self, repo: Repo, revision: str, folder: str, query: dict[str, list[str]]) -> None:
        sha = repo.resolve(revision)
        tree = repo.commit(sha)["tree"]
        recursive, expand = is_true(query.get("recursive")), is_true(query.get("expand"))
        directories = self._directories(tree)
        if folder and folder not in directories:
            raise HubError(404, f"Folder not found: {folder}", "EntryNotFound", {"X-Repo-Commit": sha})
        prefix = f"{folder}/" if folder else ""
        items = []
        for path in sorted(set(tree) | directories):
            if not path.startswith(prefix) or (not recursive and "/" in path[len(prefix) :]):
                continue
            last = self._last_commit(repo, sha, path) if expand else None
            if path in tree:
                items.append(self._entry_json(path, tree[path], last))
            else:
                items.append(self._folder_json(tree, path, last))
        self._send_json(items)

    def _paths_info(self, repo: Repo, revision: str) -> None:
        form = parse_qs(self._body().decode())
        sha = repo.resolve(revision)
        tree = repo.commit(sha)["tree"]
        expand = is_true(form.get("expand"))
        directories = self._directories(tree)
        items = []
        for path in dict.fromkeys(p.strip("/") for p in form.get("paths", [])):
            last = self._last_commit(repo, sha, path) if expand and (path in tree or path in directories) else None
            if path in tree:
                items.append(self._entry_json(path, tree[path], last))
            elif path in directories:
                items.append(self._folder_json(tree, path, last))
        self._send_json(items)

    def _refs(self, repo: Repo) -> None:
        refs = repo.refs()

        def listing(kind: str, prefix: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": s} for n, s in sorted(refs[kind].items())]

        self._send_json(
            {
                "branches": listing("branches", "refs/heads/"),
                "tags": listing("tags", "refs/tags/"),
                "converts": [],
                "pullRequests": [],
            }
        )

    def _commits(self, repo: Repo, revision: str) -> None:
        items = [
            {
                "id": commit["id"],
                "title": commit["title"],
                "message": commit["message"],
                "date": commit["date"],
                "authors": [{"user": author, "avatar": None} for author in commit["authors"]],
            }
            for commit in repo.history(repo.resolve(revision))
        ]
        self._send_json(items)

    def _resolve(self, repo: Repo, revision: str, path: str, method: str) -> None:
        sha = repo.resolve(revision)
        entry = repo.commit(sha)["tree"].get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        size = entry["size"]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry["oid"]}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(size)})
        start, end, status = 0, size, 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None or match.groups() == ("", ""):
                raise HubError(416, f"Invalid Range: {range_header}", headers={"Content-Range": f"bytes */{size}"})
            first, last = match.groups()
            start, end = (
                (int(first), min(int(last) + 1 if last else size, size)) if first else (size - int(last), size)
            )
            if start >= size or start >= end:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            start, status = max(start, 0), 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        fault = self.hub.faults.take_download(repo.id, path) if method == "GET" else None
        blob = self.hub.storage.blob_path(entry["sha256"])
        if fault is None:
            headers["Content-Length"] = str(end - start)
            self._send_headers(status, headers)
            if method == "GET":
                with blob.open("rb") as f:
                    f.seek(start)
                    remaining = end - start
                    while remaining > 0:
                        chunk = f.read(min(remaining, CHUNK))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        remaining -= len(chunk)
            return
        with blob.open("rb") as f:
            f.seek(start)
            body = bytearray(f.read(end - start))
        if fault == "corrupt":
            middle = size // 2
            for position in range(max(middle, start), min(middle + 16, end)):
                body[position - start] ^= 0xFF
        elif fault == "truncate":
            body = body[: len(body) // 2]
        headers["Content-Length"] = str(end - start if fault == "disconnect" else len(body))
        self._send_headers(status, headers)
        self.wfile.write(body[: len(body) // 2] if fault == "disconnect" else body)
        if fault == "disconnect":
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
