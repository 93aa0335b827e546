"""Output folders: the one meaning of ``overwrite`` shared by every command that writes a folder.

``overwrite`` means: *replace the outputs this program writes, keep anything else*. Without it, a folder that exists
and holds anything is refused before any work starts; with it, each output replaces the file of the same name and
every other file in the folder stays. Nothing is ever deleted up front.
"""

import os
from pathlib import Path

from .errors import OutputExistsError


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that `path` may receive outputs; create nothing.

    Args:
        path: the output folder; it may not exist yet.
        overwrite: accept a folder that already holds files (outputs of the same name get replaced, others kept).

    Returns:
        `path` as a `Path`.

    Raises:
        OutputExistsError: `path` is a file, or a non-empty folder and `overwrite` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} is a file; give a folder to write the outputs into.")
    if path.is_dir() and not overwrite and any(path.iterdir()):
        raise OutputExistsError(
            f"{path} already exists and is not empty; choose another folder, or pass --overwrite (overwrite=True) to "
            "write into it: outputs of the same name are replaced, other files are kept."
        )
    return path


__all__ = ["check_output_dir"]
