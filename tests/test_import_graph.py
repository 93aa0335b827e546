"""The import graph of hf_relrep: no circles, and the library never imports its experiments.

Every module of the package is parsed with :mod:`ast`; each ``import`` of an hf_relrep module, at the top of the file
or inside a function (``if TYPE_CHECKING:`` blocks included), is an edge. Relative imports are resolved; importing a
package is an edge to its ``__init__``, and ``from package import name`` is an edge to ``package.name`` when that is a
module, else to the package. A package ``__init__`` that loads its modules by name (``importlib.import_module``: lazy
re-exports) has an edge to every module named by a string in it (``".training"`` or ``"hf_relrep.training"``); other
modules that import by name (the table of moved modules that only a deprecated import path reaches) do not. A cycle
is a failure even when it hides behind a call-time import: a call-time import is for laziness (heavy optional
packages, CLI subcommands), never for dodging a circle.
"""

import ast
from pathlib import Path


PACKAGE = "hf_relrep"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Modules directly under hf_relrep/: the root holds only what concerns the whole package.
MAX_ROOT_MODULES = 6
MAX_MODULE_LINES = 450


def _module_name(path: Path) -> str:
    """The dotted name of a source file of the package (``pkg/__init__.py`` is ``pkg``)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name that a (possibly relative) import in ``module`` refers to."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _edges(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The hf_relrep modules that ``module`` imports anywhere in its file."""

    def known(name: str) -> str | None:
        # ``import a.b.c`` where c is not a module (it cannot be, but be safe) falls back to the longest module prefix.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    loads_by_name = is_package and any(
        isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "import_module")
        for node in ast.walk(tree)
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if loads_by_name and isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
            if name.startswith("."):
                level = len(name) - len(name.lstrip("."))
                name = _resolve(module, is_package, level, name.lstrip(".") or None)
            if name in modules:
                found.add(name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    target = known(alias.name)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else known(base)
                if target:
                    found.add(target)
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        # Iterative Tarjan: the graph is small but recursion depth should not depend on it.
        work = [(node, iter(sorted(graph[node])))]
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[current] = min(low[current], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[current])
                if low[current] == index[current]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == current:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_closed_path(graph, set(component)) for component in components]


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth-first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    return sorted(component)


def test_the_graph_sees_relative_call_time_and_lazy_imports():
    graph = _graph()
    assert "hf_relrep.errors" in graph["hf_relrep.configuration"]  # ``from .errors import ...`` at the top
    # ``from ..reproduce.alignment import stitch_pair`` inside a function
    assert "hf_relrep.experiments.reproduce.alignment" in graph["hf_relrep.experiments.study.batch_stats_text"]
    assert "hf_relrep.evaluation.scoring" in graph["hf_relrep.evaluation"]  # a lazy re-export by module name
    assert "hf_relrep.zoo.e5s1" in graph["hf_relrep.zoo"]  # ``from .e5s1 import ...``: the module, not the package


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(cycle) for cycle in cycles)


def test_the_library_never_imports_its_experiments():
    clients = (f"{PACKAGE}.experiments", f"{PACKAGE}.cli")
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if not any(module == client or module.startswith(client + ".") for client in clients)
        for target in targets
        if target == clients[0] or target.startswith(clients[0] + ".")
    )
    assert not offenders, "the library imports its experiments:\n" + "\n".join(offenders)


def test_the_root_stays_small():
    root_modules = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules
    too_long = {
        _module_name(path): lines
        for path in ROOT.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, too_long
