"""What the local hub shares between its storage and its HTTP handler: Hub protocol constants, errors, git rules."""

import fnmatch
import re
from typing import NamedTuple


HOST = "127.0.0.1"
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024
"""Files of this size or more go through Git LFS (the Hub refuses larger regular files)."""

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
"""URL segment of ``/api/{segment}/...`` -> repo type."""
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
"""Repo type -> prefix of its id in file URLs (``/{prefix}{namespace}/{name}/resolve/...``)."""
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the client keys its error type on this text

# The .gitattributes the Hub puts in the initial commit of a new repo (abridged): files matching these go to LFS.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
        " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
        " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)


class RequestRecord(NamedTuple):
    """One request answered by a :class:`~hf_relrep.testing.LocalHub` (``status`` is 0 when the connection was
    dropped)."""

    method: str
    path: str
    status: int


class HubError(Exception):
    """An HTTP error answer: status, message, and the ``X-Error-Code`` the client maps to a typed error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.detail = detail  # body text, when the header must keep a wording the client recognizes


class DropConnection(Exception):
    """Close the client connection without any answer (fault injection)."""

    def __init__(self, stop_server: bool):
        super().__init__("connection dropped by fault injection")
        self.stop_server = stop_server


def lfs_pointer(sha256: str, size: int) -> bytes:
    """Content of the Git LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_true(values: list[str] | None) -> bool:
    """Whether a query parameter (all its values, as ``parse_qs`` gives them) is set to a true value."""
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


def valid_repo_path(path: str) -> bool:
    """Whether ``path`` can name a file in a repo (relative, no empty, ``.`` or ``..`` part, no backslash)."""
    parts = path.split("/")
    return bool(path) and "\\" not in path and "\0" not in path and all(p not in ("", ".", "..") for p in parts)


def gitattributes_lfs(path: str, gitattributes: str) -> bool:
    """Whether ``path`` is marked ``filter=lfs`` by a ``.gitattributes`` text (last matching line wins)."""
    is_lfs = False
    for line in gitattributes.splitlines():
        tokens = line.strip().split()
        if not tokens or tokens[0].startswith("#"):
            continue
        pattern, attrs = tokens[0].lstrip("/"), tokens[1:]
        subject = path if "/" in pattern else path.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(subject, pattern.replace("**/", "*").replace("**", "*")):
            if "filter=lfs" in attrs:
                is_lfs = True
            elif "-filter" in attrs or "!filter" in attrs:
                is_lfs = False
    return is_lfs


def gitignored(path: str, gitignore: str) -> bool:
    """Whether ``path`` is ignored by a ``.gitignore`` text (last matching pattern wins, ``!`` negates)."""
    ignored = False
    for line in gitignore.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [path, path.rsplit("/", 1)[-1], *(path.split("/")[: i + 1][-1] for i in range(path.count("/")))]
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored
