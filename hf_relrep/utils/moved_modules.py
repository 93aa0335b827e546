"""Modules that moved: the old import paths keep working, with a `FutureWarning` that names the new place.

`MOVED_MODULES` is the one table of old → new module paths. `install` puts a finder at the front of
`sys.meta_path` that answers an import of an old path (or of anything under it) with the module at the new path,
the very same module object: ``import hf_relrep.projection`` warns once and gives `hf_relrep.relative.projection`,
``from hf_relrep.reproduce.config import METHODS`` gives `hf_relrep.experiments.reproduce.config`'s ``METHODS``.
"""

import importlib
import importlib.machinery
import sys
import warnings
from types import ModuleType


#: Old module path → new module path, for the modules the layout by concern moved.
MOVED_MODULES: dict[str, str] = {
    "hf_relrep.pooling": "hf_relrep.relative.pooling",
    "hf_relrep.projection": "hf_relrep.relative.projection",
    "hf_relrep.similarities": "hf_relrep.relative.similarities",
    "hf_relrep.similarity": "hf_relrep.alignment.diagnostics",
    "hf_relrep.translation": "hf_relrep.alignment.translation",
    "hf_relrep.translated_stitching": "hf_relrep.stitching",
    "hf_relrep.modeling.absolute_sides": "hf_relrep.modeling.translated",
    "hf_relrep.densification": "hf_relrep.topology.densification",
    "hf_relrep.grouping": "hf_relrep.topology.grouping",
    "hf_relrep.plotting": "hf_relrep.utils.plotting",
    "hf_relrep.files": "hf_relrep.utils.files",
    "hf_relrep.cache": "hf_relrep.utils.cache",
    "hf_relrep.reproduce": "hf_relrep.experiments.reproduce",
    "hf_relrep.study": "hf_relrep.experiments.study",
}


def new_name(fullname: str) -> str | None:
    """The new path of module `fullname` when it is, or lies under, a moved module; `None` otherwise.

    Example:
        >>> new_name("hf_relrep.reproduce.config")
        'hf_relrep.experiments.reproduce.config'
    """
    head, dot, rest = fullname, "", ""
    while head:
        if head in MOVED_MODULES:
            return MOVED_MODULES[head] + dot + rest
        head, dot, tail = head.rpartition(".")
        rest = tail + ("." + rest if rest else "")
        dot = "."
    return None


def warn_moved(old: str, new: str, *, stacklevel: int = 2) -> None:
    """The `FutureWarning` for a use of the old path `old` of the module now at `new`.

    Args:
        stacklevel: as for `warnings.warn` called where `warn_moved` is called.
    """
    warnings.warn(
        f"{old} moved to {new}; import it from there (the old path will be removed in a future release).",
        FutureWarning,
        stacklevel=stacklevel + 1,
    )


class _MovedModuleLoader:
    """Gives the module at the new path (imported if needed) for the old one, after a `FutureWarning`."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_moved(spec.name, self.new, stacklevel=_caller_stacklevel())
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new path is already executed."""


class MovedModuleFinder:
    """A `sys.meta_path` finder for the old paths of `MOVED_MODULES` (`importlib.abc.MetaPathFinder`'s protocol; the
    abstract class itself is not imported, it costs more than the rest of the command line's start)."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new))


def _caller_stacklevel() -> int:
    """The `warnings.warn` stack level of the import statement, seen from `_MovedModuleLoader.create_module`.

    `warnings` skips the frames of the import machinery itself; the frames of this module are counted.
    """
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename in (__file__, *_IMPORT_MACHINERY):
        level += frame.f_code.co_filename == __file__
        frame = frame.f_back
    return level


_IMPORT_MACHINERY = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def install() -> None:
    """Put a `MovedModuleFinder` at the front of `sys.meta_path` (once)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


__all__ = ["MOVED_MODULES", "MovedModuleFinder", "install", "new_name", "warn_moved"]
