"""The layering rules of docs/architecture.md, enforced: the statistics core stays pure, and every
runnable docstring example runs."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import watchkeeper

SRC = Path(watchkeeper.__file__).parent
PURE_ALLOWED = {"numpy", "scipy", "pyarrow", "datasketches", "watchkeeper", "__future__"}
STDLIB_OK = {
    "base64",
    "collections",
    "dataclasses",
    "math",
    "typing",
    "enum",
    "functools",
    "itertools",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted((SRC / "stats").rglob("*.py")),
    ids=lambda p: str(p.relative_to(SRC / "stats")),
)
def test_statistics_core_is_pure(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top in PURE_ALLOWED | STDLIB_OK, f"{path.name} imports {name}"
        if top == "watchkeeper":
            assert name.startswith(("watchkeeper.stats", "watchkeeper.errors")), (
                f"{path.name} imports {name}: the core must not depend on outer layers"
            )


def test_importing_watchkeeper_loads_no_heavy_optional_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, watchkeeper; "
        "print(sorted(m for m in ('pandas', 'polars', 'plotly', 'jinja2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


MODULES = sorted(m.name for m in pkgutil.walk_packages([str(SRC)], prefix="watchkeeper."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_sdk_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, watchkeeper.sdk; "
        "print(sorted(m for m in ('numpy', 'pyarrow', 'scipy', 'pandas', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_top_level_names_are_the_functions() -> None:
    import watchkeeper.profiles  # a submodule import must not shadow the function

    assert callable(watchkeeper.profile) and watchkeeper.profile is watchkeeper.profiles.profile
    assert callable(watchkeeper.compare)
