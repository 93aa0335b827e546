"""Output of the studies: the folder, atomic JSON/text writes (through `hf_relrep.utils.files`), markdown tables.

A study's folder holds a marker file naming the study; running the same study again into the same folder continues
it (cached cells are reused, results are rewritten), while a folder that holds anything else is refused.
"""

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import OutputExistsError
from ...utils.files import atomic_write_text


MARKER = ".hf-relrep-study"


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (`hf_relrep.utils.files.atomic_write_text`): the old file or the new, never half."""
    atomic_write_text(path, text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON, atomically (see [`write_text`])."""
    return write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON content of `path`, or `None` when it does not exist or is unreadable (a cell to recompute)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_out_dir(out: str | os.PathLike | None, study: str) -> Path:
    """The study's output folder, created and marked; a non-empty folder of anything else is refused.

    Args:
        out: the folder; `None` makes ``runs/study-<study>-<timestamp>``.
        study: the study's name, written into the marker file.

    Raises:
        OutputExistsError: `out` exists, is not empty and is not a folder of the same study.
    """
    path = Path(out) if out is not None else Path("runs") / time.strftime(f"study-{study}-%Y%m%d-%H%M%S")
    marker = path / MARKER
    if path.exists() and any(path.iterdir()):
        owner = marker.read_text(encoding="utf-8").strip() if marker.exists() else None
        if owner != study:
            what = f"the output of study {owner!r}" if owner else "files this study did not write"
            raise OutputExistsError(
                f"{path} is not empty and holds {what}; choose another --out (a folder of the same study is "
                "continued, its cached cells reused)."
            )
    path.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        write_text(marker, study + "\n")
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; the first column is left-aligned, the others right-aligned."""
    align = [":--"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


__all__ = ["MARKER", "markdown_table", "prepare_out_dir", "read_json", "write_json", "write_text"]
