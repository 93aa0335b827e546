"""Writing files and folders without ever losing what was there: the one atomic-write module of hf-relrep.

Every folder hf-relrep writes (a saved model, a stitched model, reproduce outputs, converted encoders, caches) is
written into a temporary sibling, ``.<name>.hf-tmp-<pid>-<random>``, and swapped in once complete: a crash at any
instant leaves the old content or the new one under ``<name>``, never a mix and never nothing. On Linux the swap is one
``renameat2(RENAME_EXCHANGE)``; elsewhere the old folder is first renamed to ``.<name>.hf-old-<pid>-<random>`` and
restored by the next run if the crash came between the two renames. Files are written the same way with `os.replace`.
Leftover temporaries of dead processes are removed the next time the same target is written (`clean_leftovers`).

Files in a replaced folder that the program did not write are kept: they are carried into the new folder (hard
links, so nothing is copied) before the swap.

``overwrite`` (``--overwrite``) means the same for every command: *replace a folder this program wrote, keep
anything else*. Without it, a folder that exists and holds anything is refused before any work starts. With it, the
folder must carry hf-relrep's ownership marker (``.hf-relrep-output.json``, listing the files the command wrote): the
new outputs replace the old ones once they are complete, and files the marker does not list stay. A folder without
the marker is refused with the reason, so that ``--out .`` cannot empty a working folder.
"""

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError


OUTPUT_MARKER = ".hf-relrep-output.json"
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.hf-(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}")
_RENAME_EXCHANGE = 2


# ----------------------------------------------------------------------------------------------------- primitives


def temporary_sibling(target: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh name beside `target`, ``.<name>.hf-<kind>-<pid>-<random>``, that `clean_leftovers` recognises."""
    target = Path(target)
    return target.parent / f".{target.name}.hf-{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: assume it is still writing
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _, names in os.walk(path):
        for name in names:
            file = Path(root) / name
            if file.is_symlink():
                continue
            with contextlib.suppress(OSError):
                fd = os.open(file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(root))


def clean_leftovers(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries an interrupted write of `target` left beside it; restore `target` if it went missing.

    A temporary belongs to a dead process when the pid in its name no longer runs; live writers' temporaries are left
    alone. A leftover ``.hf-old-`` folder is the previous content of `target`, set aside during a swap that did not
    finish: it is renamed back when `target` is missing, else removed.

    Returns:
        The leftovers removed or restored.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    handled = []
    for entry in sorted(target.parent.iterdir()):
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None or match["name"] != target.name or _pid_alive(int(match["pid"])):
            continue
        if match["kind"] == "old" and not os.path.lexists(target):
            os.rename(entry, target)
        else:
            _remove(entry)
        handled.append(entry)
    return handled


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # a file system without the flag: fall back to two renames
    raise OSError(error, os.strerror(error), str(first), None, str(second))


def _link_or_copy(source: Path, destination: Path) -> None:
    """`destination` becomes the same file as `source`: a hard link (nothing copied), else a copy."""
    if source.is_symlink():
        os.symlink(os.readlink(source), destination)
    elif source.is_dir():
        os.mkdir(destination)
        shutil.copymode(source, destination)
        for entry in source.iterdir():
            _link_or_copy(entry, destination / entry.name)
    else:
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)


def carry_foreign(old: str | os.PathLike, new: str | os.PathLike, owned: Callable[[str], bool]) -> list[str]:
    """Bring into `new` every entry of `old` that `new` does not have and the program does not own.

    Args:
        old: the folder about to be replaced.
        new: its replacement, complete.
        owned: whether a top-level name in `old` is one of the program's outputs (then it is dropped, not carried).

    Returns:
        The names carried.
    """
    old, new = Path(old), Path(new)
    carried = []
    for entry in sorted(old.iterdir()):
        if entry.name == OUTPUT_MARKER or os.path.lexists(new / entry.name) or owned(entry.name):
            continue
        _link_or_copy(entry, new / entry.name)
        carried.append(entry.name)
    return carried


def swap_in(new: str | os.PathLike, target: str | os.PathLike, *, owned: Callable[[str], bool] | None = None) -> None:
    """Put the complete folder `new` in place of `target`; a crash at any instant leaves old or new under `target`.

    Entries of an existing `target` that `new` lacks and `owned` does not claim are carried across first (they are
    not the program's to delete). `new` is gone afterwards.
    """
    new, target = Path(new), Path(target)
    owned = owned or (lambda name: False)
    if os.path.lexists(target) and not target.is_dir():
        raise OutputExistsError(f"{target} is a file; give a folder to write into.")
    cwd = _cwd_inside(target)
    _fsync_tree(new)  # before the foreign files join: those are not ours to flush
    if target.is_dir():
        carry_foreign(target, new, owned)
        shutil.copymode(target, new)
    try:
        os.rename(new, target)  # target missing (or an empty folder): one atomic rename
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
            raise
        if _exchange(new, target):
            late = [
                entry
                for entry in new.iterdir()
                if entry.name != OUTPUT_MARKER and not os.path.lexists(target / entry.name) and not owned(entry.name)
            ]
            for entry in late:  # written into the old folder by someone else meanwhile: keep it
                with contextlib.suppress(OSError):
                    os.rename(entry, target / entry.name)
            _remove(new)  # now the old content
        else:
            old = temporary_sibling(target, "old")
            os.rename(target, old)
            os.rename(new, target)  # a crash before this line: the next run restores `old`
            _remove(old)
    _fsync_dir(target.parent)
    if cwd is not None:  # our working directory was inside the old folder: move into the new one
        with contextlib.suppress(OSError):
            os.chdir(target / cwd)


def _cwd_inside(target: Path) -> Path | None:
    try:
        cwd = Path.cwd().resolve()
    except (FileNotFoundError, OSError):
        return None
    resolved = target.resolve()
    return cwd.relative_to(resolved) if cwd == resolved or resolved in cwd.parents else None


# ----------------------------------------------------------------------------------------------------- writers


@contextlib.contextmanager
def atomic_folder(
    target: str | os.PathLike,
    *,
    owned: Callable[[str], bool] | None = None,
    marker: str | None = None,
) -> Iterator[Path]:
    """Write a folder completely, then swap it in place of `target` (see `swap_in`); nothing is lost on a crash.

    Leftovers of interrupted writes of `target` are cleaned first. If the block raises, the temporary is removed and
    `target` is untouched.

    Args:
        target: the folder to (re)place; a symbolic link is followed, and its destination replaced.
        owned: which names of an existing `target` the program wrote and may drop; everything else is kept.
            Defaults to the names listed in `target`'s ownership marker (none when it has no marker).
        marker: write hf-relrep's ownership marker naming this command (e.g. ``"stitch"``), listing every file the
            block wrote, so that ``--overwrite`` later recognises the folder as ours.

    Yields:
        The temporary folder to write into.

    Example:
        >>> with atomic_folder("out/model") as tmp:  # doctest: +SKIP
        ...     model.save_pretrained(tmp)
    """
    target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    if owned is None:
        owned = owned_by_marker(target)
    tmp = temporary_sibling(target)
    os.mkdir(tmp)
    try:
        yield tmp
        if marker is not None:
            write_output_marker(tmp, marker)
        swap_in(tmp, target, owned=owned)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path` (`os.replace`), else vanishes.

    Example:
        >>> with atomic_file("results.json", "w") as handle:  # doctest: +SKIP
        ...     json.dump(results, handle)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temporary_sibling(path)
    try:
        # O_EXCL on a fresh name; mode 0o666 less the umask, as open() would give the file itself.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one, never a part."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------------- ownership


def write_output_marker(folder: str | os.PathLike, command: str, files: Iterable[str] | None = None) -> None:
    """Write hf-relrep's ownership marker into `folder`: which command wrote it, and which top-level entries."""
    folder = Path(folder)
    from ..version import __version__

    names = sorted(files if files is not None else (e.name for e in folder.iterdir() if e.name != OUTPUT_MARKER))
    payload = {"written_by": f"hf-relrep {command}", "hf_relrep_version": __version__, "files": names}
    atomic_write_text(folder / OUTPUT_MARKER, json.dumps(payload, indent=2) + "\n")


def read_output_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ownership marker of `folder`, or None when it has none (or an unreadable one)."""
    try:
        payload = json.loads((Path(folder) / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("files"), list):
        return None
    return payload


def owned_by_marker(folder: str | os.PathLike) -> Callable[[str], bool]:
    """``name -> bool``: whether the marker of `folder` lists `name` (False for everything without a marker)."""
    payload = read_output_marker(folder) or {"files": []}
    names = set(payload["files"])
    return lambda name: name in names


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, command: str | None = None) -> Path:
    """Check, before any work, that `path` may receive a command's outputs; create nothing.

    Args:
        path: the output folder; it may not exist yet.
        overwrite: accept a folder that an earlier hf-relrep run wrote (it carries the ownership marker): its outputs
            are replaced once the new ones are complete, files it did not write are kept.
        command: the command name, for messages.

    Returns:
        `path` as a `Path`.

    Raises:
        OutputExistsError: `path` is a file; a non-empty folder without `overwrite`; with `overwrite`, a folder that
            hf-relrep did not write (no marker) or the current working folder (or one holding it).
    """
    path = Path(path)
    flag = "--overwrite (overwrite=True)"
    if os.path.lexists(path) and not path.is_dir():
        raise OutputExistsError(f"{path} is a file, not a folder; give a folder to write the outputs into.")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    if not overwrite:
        raise OutputExistsError(
            f"{path} already exists and is not empty; choose another folder, or pass {flag} to replace the outputs of "
            "an earlier hf-relrep run there (other files are kept)."
        )
    if read_output_marker(path) is None:
        raise OutputExistsError(
            f"{path} was not written by hf-relrep (it has no {OUTPUT_MARKER}), so {flag} will not replace it: choose "
            "a new or empty folder, or move its files away first."
        )
    if _cwd_inside(path) is not None:
        raise OutputExistsError(
            f"{path} is your current folder (or holds it); hf-relrep replaces an output folder by swapping in a new "
            "one, which would leave your shell in a deleted folder. Run from another folder, or choose another --out."
        )
    return path


__all__ = [
    "OUTPUT_MARKER",
    "atomic_file",
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "carry_foreign",
    "check_output_dir",
    "clean_leftovers",
    "owned_by_marker",
    "read_output_marker",
    "swap_in",
    "temporary_sibling",
    "write_output_marker",
]
