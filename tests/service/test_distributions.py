"""The distributions, built offline as a user would: the full ``watchkeeper`` wheel carries the
licence and the migrations; ``watchkeeper-sdk`` (``packaging/sdk``) is the SDK alone, installed
in a fresh virtual environment that has no numpy or pyarrow, and logs to a real server."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from email.parser import Parser
from pathlib import Path
from typing import Any

import httpx
import pytest

import watchkeeper
from watchkeeper.store.migrations import head as revisions_head

ROOT = Path(__file__).parents[2]
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the text as the ASF publishes it
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
HEAVY = ("numpy", "pyarrow", "scipy", "plotly", "pandas", "sqlalchemy", "watchkeeper")
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def build_wheel(project: Path, out: Path) -> Path:
    """``pip wheel`` without the network: the build backend of this environment."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "-w", str(out), str(project)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    [wheel] = out.glob("*.whl")
    return wheel


def source_copy(tmp_path: Path, *parts: str) -> Path:
    """The files the builds read, copied with the repository's layout (links followed), so
    a build leaves nothing in the checkout."""
    copy = tmp_path / "repo"
    for part in parts:
        source, target = ROOT / part, copy / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORE)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return copy


def metadata(wheel: zipfile.ZipFile) -> Any:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def test_the_licence_is_apache_2_0() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], project["license-files"]) == ("Apache-2.0", ["LICENSE"])
    text = (ROOT / "LICENSE").read_bytes()
    assert text.split()[:5] == [b"Apache", b"License", b"Version", b"2.0,", b"January"]
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256  # the standard text, verbatim


MIGRATE_FROM_THE_WHEEL = """
import sys
import sqlalchemy as sa
import watchkeeper
from watchkeeper.store.migrations import head as revisions_head
from watchkeeper.store.migrations import head, migrate

assert watchkeeper.__file__.startswith(sys.argv[1]), watchkeeper.__file__
print(migrate(sa.create_engine(sys.argv[2])), head())
"""


def test_the_wheel_carries_the_licence_and_the_migrations(tmp_path: Path) -> None:
    repo = source_copy(tmp_path, "pyproject.toml", "README.md", "LICENSE", "src")
    with zipfile.ZipFile(build_wheel(repo, tmp_path / "dist")) as wheel:
        names = set(wheel.namelist())
        meta = metadata(wheel)
        licence = wheel.read(f"watchkeeper-{watchkeeper.__version__}.dist-info/licenses/LICENSE")
        wheel.extractall(tmp_path / "unpacked")
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert licence == (ROOT / "LICENSE").read_bytes()
    revisions = sorted(p.name for p in (ROOT / "src/watchkeeper/store/migrations").rglob("*.py"))
    shipped = sorted(Path(n).name for n in names if n.startswith("watchkeeper/store/migrations/"))
    assert shipped == revisions and "0001_initial.py" in shipped
    assert any(r.startswith("alembic") for r in meta.get_all("Requires-Dist"))
    assert "watchkeeper/sdk/__init__.py" in names
    # the unpacked wheel alone (no source tree, no alembic.ini) migrates a database
    unpacked = tmp_path / "unpacked"
    out = subprocess.run(
        [sys.executable, "-c", MIGRATE_FROM_THE_WHEEL, str(unpacked), f"sqlite:///{tmp_path / 'db'}"],
        check=False, capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [revisions_head(), revisions_head()]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "src/watchkeeper/sdk").glob("*.py")), ids=lambda p: p.name
)
def test_the_sdk_modules_import_one_another_relatively(path: Path) -> None:
    """So the same files work as ``watchkeeper.sdk`` and as ``watchkeeper_sdk``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    absolute = [name for name in names if name.split(".")[0] == "watchkeeper"]
    assert absolute == [], f"{path.name}: import these relatively (from .module import name)"


@pytest.fixture(scope="module")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sdk")
    repo = source_copy(tmp, "LICENSE", "packaging/sdk", "src/watchkeeper/sdk")
    return build_wheel(repo / "packaging" / "sdk", tmp / "dist")


def test_the_sdk_wheel_is_the_sdk_alone_with_no_dependency(sdk_wheel: Path) -> None:
    with zipfile.ZipFile(sdk_wheel) as wheel:
        names = wheel.namelist()
        meta = metadata(wheel)
    modules = sorted(p.name for p in (ROOT / "src/watchkeeper/sdk").glob("*.py"))
    assert sorted(n.split("/")[1] for n in names if n.startswith("watchkeeper_sdk/")) == sorted(
        [*modules, "py.typed"]
    )
    assert {n.split("/")[0] for n in names} == {
        "watchkeeper_sdk",
        f"watchkeeper_sdk-{watchkeeper.__version__}.dist-info",
    }  # no file of the full package: both install side by side
    assert (meta["Name"], meta["Version"]) == ("watchkeeper-sdk", watchkeeper.__version__)
    assert meta.get_all("Requires-Dist") is None
    assert meta["License-Expression"] == "Apache-2.0"


SCRIPT = """
import dataclasses, importlib.util, json, sys
from watchkeeper_sdk import Client

url, model, reference, spool, *modules = sys.argv[1:]
with Client(url, spool_dir=spool) as client:
    client.register(model, reference, prediction="pred")
    ids = [
        client.log_prediction(model, {"age": 30 + i % 25, "plan": "pro" if i % 3 else "basic"},
                              "yes" if i % 2 else "no")
        for i in range(300)
    ]
    for pid in ids[:40]:
        client.log_actual(model, pid, "yes")
    flushed = client.flush(timeout=60)
    stats = dataclasses.asdict(client.stats)
heavy = [m for m in modules if importlib.util.find_spec(m) is not None]
print(json.dumps({"flushed": flushed, "stats": stats, "heavy": heavy}))
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_venv_with_only_the_sdk_logs_to_a_real_server(
    sdk_wheel: Path,
    tmp_path: Path,
    database_url: str,
    server: Callable[..., Any],
    wait_for: Callable[..., None],
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(sdk_wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    reference = tmp_path / "train.csv"
    rng = random.Random(0)
    with reference.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["age", "plan", "pred"])
        for _ in range(300):
            writer.writerow([rng.randint(20, 60), rng.choice(["basic", "pro"]), "yes"])

    running = server(database_url)
    script = tmp_path / "model_service.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [str(python), "-I", str(script), running.url, "churn", str(reference), str(tmp_path / "s"),
         *HEAVY],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["heavy"] == []  # not even importable there
    assert result["flushed"] is True
    assert (result["stats"]["acknowledged"], result["stats"]["dropped"]) == (340, 0)

    def status() -> dict[str, Any]:
        r = httpx.get(f"{running.url}/v1/models/churn", timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert status()["events_total"] == 300
    wait_for(lambda: status()["actuals_total"] == 40, "the 40 labels")
