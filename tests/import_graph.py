"""The graph of imports between watchkeeper's modules, read from the source with ``ast``.

Every import statement counts, wherever it is: at module level, inside a function (the lazy
imports of the command line and the reports) and under ``if TYPE_CHECKING:``; relative imports
are resolved. ``tests/test_architecture.py`` checks the layers of ``docs/architecture.md``
against it. Run as a script, it prints the import depth, the longest chain of modules each
importing the next (imports inside a cycle not followed), and that chain::

    python -m tests.import_graph          # from the repository root
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import watchkeeper

SRC = Path(watchkeeper.__file__).parent


@dataclass(frozen=True)
class Import:
    """``module`` imports ``target`` on ``line``; ``typing_only`` under ``if TYPE_CHECKING:``."""

    module: str
    target: str
    line: int
    typing_only: bool


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package: dotted name → file (a package is its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    """The longest known module that ``name`` starts with (``a.b.func`` → ``a.b``)."""
    while name not in known:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _typing_lines(tree: ast.Module) -> set[int]:
    """The line numbers inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for child in node.body:
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """The imports of watchkeeper modules in module ``name`` (its file ``path``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    typing = _typing_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    seen: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            resolved = _resolve(target, known)
            if resolved is not None and resolved != name and (resolved, node.lineno) not in seen:
                seen.add((resolved, node.lineno))
                yield Import(name, resolved, node.lineno, node.lineno in typing)


def graph(src: Path = SRC, *, typing: bool = True) -> dict[str, set[str]]:
    """module → the watchkeeper modules it imports (without ``typing``: at run time only)."""
    known = modules(src)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for imp in imports_of(name, path, known):
            if typing or not imp.typing_only:
                edges[name].add(imp.target)
    return edges


def _components(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a list of modules, dependencies first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(edges) + 100))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def depth(edges: Mapping[str, set[str]]) -> tuple[int, list[str]]:
    """The import depth: the number of imports along the longest chain of modules each
    importing the next, and that chain. Imports between modules of one cycle (modules that
    import each other) are not followed, so a chain never goes round."""
    components = _components(edges)  # dependencies come before their importers
    where = {m: i for i, component in enumerate(components) for m in component}
    best: dict[str, tuple[int, list[str]]] = {}
    for i, component in enumerate(components):
        for m in component:
            longest: tuple[int, list[str]] = (0, [m])
            for target in sorted(edges[m]):
                if where[target] != i and best[target][0] + 1 > longest[0]:
                    longest = (best[target][0] + 1, [m, *best[target][1]])
            best[m] = longest
    return max(best.values(), key=lambda found: found[0])


def main() -> None:
    for label, typing in (("every import", True), ("at run time", False)):
        steps, chain = depth(graph(typing=typing))
        print(f"import depth ({label}): {steps}")
        print("  " + " → ".join(m.removeprefix("watchkeeper.") or "watchkeeper" for m in chain))


if __name__ == "__main__":
    main()
