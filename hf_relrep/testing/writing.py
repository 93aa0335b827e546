"""Endpoints of a local hub that write: repos and their settings, branches and tags, LFS uploads, commits."""

import base64
import hashlib
import json
import os
import secrets
from typing import Any

from ..utils.hashing import git_blob_sha1
from .handler import BaseHandler
from .protocol import (
    SHA256_RE,
    URL_PREFIXES,
    DropConnection,
    HubError,
    gitattributes_lfs,
    gitignored,
    is_true,
    lfs_pointer,
    valid_repo_path,
)
from .storage import Repo


class WriteEndpoints(BaseHandler):
    """The endpoints that change the hub: create and delete repos, settings, branches and tags, preupload, the LFS
    batch, upload and verify endpoints, and commits (blobs stored first, then the branch swapped atomically)."""

    # ------------------------------------------------------------------------------------------------ repos

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        repo = self.hub.storage.repo(repo_type, body.get("organization") or self.hub.user, str(body.get("name", "")))
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        url = f"{self.hub.endpoint}/{repo.url_path}"
        try:
            self.hub.storage.create_repo(repo, private, self.hub.user)
        except HubError as error:
            if error.status == 409:
                self._send_json({"error": error.message, "url": url}, 409, {"X-Error-Message": error.message})
                return
            raise
        self._send_json({"url": url, "name": repo.id, "id": repo.id})

    def _delete_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        namespace = body.get("organization") or self.hub.user
        self.hub.storage.delete_repo(self.hub.storage.repo(body.get("type") or "model", namespace, body["name"]))
        self._send_json({})

    def _settings(self, repo: Repo) -> None:
        body = self._json_body()
        meta = repo.meta()
        if "private" in body:
            meta["private"] = bool(body["private"])
        if "visibility" in body:
            meta["private"] = body["visibility"] != "public"
        repo.set_meta(meta)
        self._send_json({"private": meta["private"]})

    # ------------------------------------------------------------------------------------------------ refs, uploads, commits

    def _ref_change(self, repo: Repo, method: str, kind: str, name: str) -> None:
        body = self._json_body() if method == "POST" else {}
        with self.hub.storage.lock(repo):
            refs = repo.refs()
            if kind == "branch":
                if method == "POST":
                    if name in refs["branches"]:
                        raise HubError(409, f"Reference already exists: refs/heads/{name}")
                    refs["branches"][name] = repo.resolve(body.get("startingPoint") or "main")
                elif name == "main":
                    raise HubError(403, "Cannot delete the default branch 'main'")
                elif refs["branches"].pop(name, None) is None:
                    raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            elif method == "POST":  # POST /tag/{revision} {"tag": name}
                tag = str(body.get("tag", ""))
                if not tag:
                    raise HubError(400, "Missing 'tag' in the request body")
                if tag in refs["tags"]:
                    raise HubError(409, f"Tag already exists: {tag}")
                refs["tags"][tag] = repo.resolve(name)
            elif refs["tags"].pop(name, None) is None:  # DELETE /tag/{tag}
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            repo.set_refs(refs)
        self._send_json({})

    def _branch_for_write(self, repo: Repo, revision: str, query: dict[str, list[str]]) -> str:
        if is_true(query.get("create_pr")):
            raise HubError(400, "LocalHub does not support pull requests: commit with create_pr=False")
        branch = revision.removeprefix("refs/heads/")
        if branch not in repo.refs()["branches"]:
            repo.resolve(revision)  # unknown revision: 404 RevisionNotFound
            raise HubError(400, f"Can only commit to a branch, not to {revision}")
        return branch

    def _preupload(self, repo: Repo, revision: str, query: dict[str, list[str]]) -> None:
        body = self._json_body()
        branch = self._branch_for_write(repo, revision, query)
        tree = repo.commit(repo.resolve(branch))["tree"]
        gitattributes_entry = tree.get(".gitattributes")
        gitattributes = (
            self.hub.storage.blob_path(gitattributes_entry["sha256"]).read_text(errors="replace")
            if gitattributes_entry
            else ""
        )
        files = []
        for item in body.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = size > 0 and (
                size >= self.hub.lfs_threshold or b"\0" in sample or gitattributes_lfs(path, gitattributes)
            )
            existing = tree.get(path)
            oid = None
            if existing is not None:
                oid = existing["sha256"] if existing["lfs"] else existing["oid"]
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": gitignored(path, body.get("gitIgnore") or ""),
                    "oid": oid,
                }
            )
        self._send_json({"files": files, "commitOid": repo.resolve(branch)})

    def _lfs_batch(self, repo: Repo) -> None:
        body = self._json_body()
        if body.get("operation") != "upload":
            raise HubError(400, "LocalHub serves LFS downloads through /resolve: only 'upload' batches are supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), int(obj.get("size", -1))
            if not SHA256_RE.match(oid) or size < 0:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            blob = self.hub.storage.blob_path(oid)
            if not (blob.is_file() and blob.stat().st_size == size):
                base = self.hub.endpoint
                item["actions"] = {
                    "upload": {
                        "href": f"{base}/_lfs/upload/{oid}?size={size}&key={self.hub.upload_key}",
                        "header": {},
                    },
                    "verify": {"href": f"{base}/_lfs/verify/{oid}", "header": {}},
                }
            objects.append(item)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, oid: str, query: dict[str, list[str]]) -> None:
        if not secrets.compare_digest((query.get("key") or [""])[-1], self.hub.upload_key):
            raise HubError(403, "Invalid or expired LFS upload URL")
        if not SHA256_RE.match(oid):
            raise HubError(400, f"Invalid LFS oid: {oid}")
        tmp = self.hub.storage.incoming_path(oid)
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as f:
                for chunk in self._iter_body():
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            if digest.hexdigest() != oid:
                raise HubError(400, f"LFS upload does not match its oid: got sha256 {digest.hexdigest()}, want {oid}")
            expected = (query.get("size") or [None])[-1]
            if expected is not None and int(expected) != size:
                raise HubError(400, f"LFS upload has {size} bytes, announced {expected}")
            blob = self.hub.storage.blob_path(oid)
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
        self._send_json({}, headers={"ETag": f'"{oid}"'})

    def _lfs_verify(self, oid: str) -> None:
        self._require_write()
        body = self._json_body()
        blob = self.hub.storage.blob_path(oid)
        if not blob.is_file():
            raise HubError(404, f"LFS object {oid} was not uploaded")
        if "size" in body and int(body["size"]) != blob.stat().st_size:
            raise HubError(422, f"LFS object {oid} has size {blob.stat().st_size}, not {body['size']}")
        self._send_json({})

    def _commit(self, repo: Repo, revision: str, query: dict[str, list[str]]) -> None:
        """Apply an ndjson commit: store its blobs first, then swap the branch ref (the only visible step)."""
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        branch = self._branch_for_write(repo, revision, query)
        header = next((line["value"] for line in lines if line.get("key") == "header"), None)
        if header is None:
            raise HubError(400, "Commit payload has no header line")
        operations = [line for line in lines if line.get("key") != "header"]
        for op in operations:
            if op.get("key") not in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                raise HubError(400, f"Unsupported commit operation: {op.get('key')}")
            if not valid_repo_path(str(op.get("value", {}).get("path", "")).strip("/")):
                raise HubError(400, f"Invalid path in commit: {op.get('value', {}).get('path')!r}")

        # 1. Store every blob of the commit (invisible until the ref moves).
        fault = self.hub.faults.take_commit(repo.id)
        additions: dict[str, dict[str, Any]] = {}
        files_done = 0
        for op in operations:
            value = op["value"]
            if op["key"] not in ("file", "lfsFile"):
                continue
            if fault is not None and files_done == fault.after_files:
                raise DropConnection(fault.stop_server)
            if op["key"] == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                data = base64.b64decode(value.get("content", ""))
                sha256 = self.hub.storage.put_blob(data)
                entry = {"oid": git_blob_sha1(data), "size": len(data), "sha256": sha256, "lfs": False}
            else:
                sha256 = str(value.get("oid", ""))
                blob = self.hub.storage.blob_path(sha256)
                if not SHA256_RE.match(sha256) or not blob.is_file():
                    raise HubError(422, f"LFS file {value['path']} was not uploaded (oid {sha256})")
                size = blob.stat().st_size
                if "size" in value and int(value["size"]) != size:
                    raise HubError(422, f"LFS file {value['path']}: size {value['size']} != stored {size}")
                entry = {"oid": git_blob_sha1(lfs_pointer(sha256, size)), "size": size, "sha256": sha256}
                entry["lfs"] = True
            additions[value["path"]] = entry
            files_done += 1
        if fault is not None:
            raise DropConnection(fault.stop_server)

        # 2. Build the new snapshot on the current head and swap the ref, under the repo lock.
        with self.hub.storage.lock(repo):
            refs = repo.refs()
            head = refs["branches"][branch]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise HubError(412, f"A commit has happened since {parent}: the head of '{branch}' is now {head}")
            tree = dict(repo.commit(head)["tree"])
            for op in operations:
                path = op["value"]["path"].strip("/")
                if op["key"] == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif op["key"] == "deletedFolder":
                    inside = [p for p in tree if p.startswith(path + "/")]
                    if not inside:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in inside:
                        del tree[p]
                else:
                    tree[path] = additions[op["value"]["path"]]
            author = self.hub.user if self.authed else "anonymous"
            summary = str(header.get("summary") or "Upload files")
            sha = repo.write_commit(tree, [head], summary, str(header.get("description") or ""), author)
            refs["branches"][branch] = sha
            repo.set_refs(refs)  # atomic replace: the whole commit becomes visible here, or nothing does
        commit_url = f"{self.hub.endpoint}/{repo.url_path}/commit/{sha}"
        self._send_json({"success": True, "commitUrl": commit_url, "commitOid": sha, "pullRequestUrl": None})
