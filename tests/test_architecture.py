"""The layering rules of docs/architecture.md, enforced: the statistics core stays pure, every
module imports only from its own layer and the layers below (read with ``ast`` from every
import statement, function-level ones included), and every runnable docstring example runs."""

from __future__ import annotations

import ast
import doctest
import importlib
import itertools
import pkgutil
from pathlib import Path

import pytest

import watchkeeper
from tests.import_graph import Import, imports_of, modules

SRC = Path(watchkeeper.__file__).parent
DOCS = Path(__file__).parents[1] / "docs"
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


# ----------------------------------------------------------------------- the import direction
# Bottom to top: a module imports from its own layer and the layers below, never above. A
# module's layer is that of its top-level name (``watchkeeper.ingest.processor``: ``ingest``;
# the package's own ``__init__`` with its lazy names: ``watchkeeper``). docs/architecture.md
# lists the same layers (checked below).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("settings", "stats"),
    ("io", "schema", "schema_infer", "schema_roles", "constraints", "estimation"),
    (
        "watchkeeper",
        "profiles",
        "quality",
        "performance_report",
        "report",
        "report_settings",
        "calibration_chunks",
        "reference",
        "analysis",
        "multivariate",
        "slices",
        "attributions",
        "html",
        "html_format",
        "charts",
        "charts_time",
        "progress",
        "examples",
        "example_model",
        "spark",
    ),
    ("store",),
    ("ingest", "evaluation"),
    ("alerts", "serving", "promotion", "card"),
    ("server",),
    ("demo", "demo_story"),
    ("cli",),
)
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}
# The SDK stands apart: a model service installs it alone, so it imports nothing of
# watchkeeper but itself, and only the programs that drive a service use it.
SDK, SDK_USERS = "sdk", {"demo", "cli"}
# Leaves: what they may import, whatever their layer.
LEAVES = {"errors": {"errors"}, "settings": {"errors"}, "stats": {"stats", "errors"}}
# Inside a layer: modules that stay apart (importer -> what it never imports, and why).
APART = {
    "watchkeeper.ingest.processor": (
        {"watchkeeper.ingest.service"},
        "the background processor uses the prediction index, never the request service",
    ),
}
# Wrong-way imports still in the tree, being removed in parallel (issue 9). Each entry is an
# xfail(strict=True): once its import is gone the test passes unexpectedly and fails, and the
# entry goes. The rules above have no exceptions.
KNOWN_VIOLATIONS: dict[str, str] = {}

MODULE_FILES = modules(SRC)
IMPORTS = {name: list(imports_of(name, path, MODULE_FILES)) for name, path in MODULE_FILES.items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _private_module_of_another_package(imp: Import) -> bool:
    parts = imp.target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            package = ".".join(parts[:i])
            return not (imp.module == package or imp.module.startswith(package + "."))
    return False


def _wrong_way(imp: Import) -> str | None:
    """Why ``imp`` breaks the import direction, or None when it does not."""
    source, target = _area(imp.module), _area(imp.target)
    if _private_module_of_another_package(imp):
        return "a private module of another package (use its public names)"
    if SDK in (source, target):
        if source == SDK and target != SDK:
            return "the SDK imports nothing of watchkeeper but itself"
        if target == SDK and source not in {SDK, *SDK_USERS}:
            return f"only {', '.join(sorted(SDK_USERS))} use the SDK"
        return None
    if source in LEAVES and target not in LEAVES[source]:
        return f"{source} is a leaf: it imports only {', '.join(sorted(LEAVES[source]))}"
    if RANK[target] > RANK[source]:
        return (
            f"{source} (layer {RANK[source]}) imports from above: {target} (layer {RANK[target]})"
        )
    forbidden, why = APART.get(imp.module, (set[str](), ""))
    if imp.target in forbidden:
        return why
    return None


def test_every_module_has_a_layer() -> None:
    areas = {_area(m) for m in MODULE_FILES} - {SDK}
    assert not areas - RANK.keys(), f"place these in a layer of LAYERS: {areas - RANK.keys()}"
    assert set(KNOWN_VIOLATIONS) <= MODULE_FILES.keys(), "a known violation names no module"


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[m]))
        if m in KNOWN_VIOLATIONS
        else m
        for m in sorted(MODULE_FILES)
    ],
)
def test_imports_follow_the_layers(module: str) -> None:
    wrong = [
        f"{MODULE_FILES[module].relative_to(SRC.parent)}:{imp.line} imports {imp.target}: {why}"
        for imp in IMPORTS[module]
        if (why := _wrong_way(imp)) is not None
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_a_wrong_way_import() -> None:
    """The checker itself: a lower layer importing an upper one, the SDK importing the core,
    a private module of another package, and the processor importing the request service."""
    cases = {
        ("watchkeeper.store.state", "watchkeeper.server.app"): "from above",
        ("watchkeeper.settings", "watchkeeper.alerts.monitors"): "leaf",
        ("watchkeeper.sdk._client", "watchkeeper.errors"): "nothing of watchkeeper",
        ("watchkeeper.server.app", "watchkeeper.sdk"): "use the SDK",
        ("watchkeeper.cli.models", "watchkeeper.sdk._client"): "private module",
        ("watchkeeper.ingest.processor", "watchkeeper.ingest.service"): "never the request",
    }
    for (source, target), expected in cases.items():
        assert expected in (_wrong_way(Import(source, target, 1, False)) or ""), (source, target)
    for source, target in (
        ("watchkeeper.cli.service", "watchkeeper.server.app"),
        ("watchkeeper.evaluation.evaluate", "watchkeeper.ingest.processor"),
        ("watchkeeper.cli.models", "watchkeeper.sdk"),
        ("watchkeeper.sdk", "watchkeeper.sdk._client"),
    ):
        assert _wrong_way(Import(source, target, 1, False)) is None, (source, target)


def test_the_layers_are_those_of_the_architecture_doc() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers: checked by tests/test_architecture.py -->", 1)[1]
    block = block.split("```text\n", 1)[1].split("```", 1)[0]
    documented: dict[int, set[str]] = {}
    for line in block.splitlines()[1:]:  # below the header line
        rank, names = line.split(maxsplit=1)
        documented[int(rank)] = {n.strip().split(" ")[0] for n in names.split(",")}
    assert documented == {rank: set(layer) for rank, layer in enumerate(LAYERS)}


def test_the_import_depth_is_a_chain_of_imports() -> None:
    """``python -m tests.import_graph`` measures (and nothing asserts) the depth; its chain is
    made of real imports, each module importing the next."""
    from tests.import_graph import depth, graph

    edges = graph()
    steps, chain = depth(edges)
    assert steps == len(chain) - 1 >= 1
    assert all(b in edges[a] for a, b in itertools.pairwise(chain))
    assert depth({"x": {"y"}, "y": {"z"}, "z": set()}) == (2, ["x", "y", "z"])
    assert depth({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == (1, ["b", "c"])  # not round a-b
