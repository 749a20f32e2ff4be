"""The tools under comparison and how to run one of them in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Input forms, as benchmarks/peers/_harness.py names them: the first is the headline.
FORMS = ("pandas-object", "pandas-categorical", "arrow")

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / "peers"
# the peers' venvs (bash benchmarks/setup_peers.sh); WATCHKEEPER_BENCH_VENVS points a second
# checkout (a git worktree) at the venvs another one already installed
VENVS_DIR = Path(os.environ.get("WATCHKEEPER_BENCH_VENVS") or BENCH_DIR / ".venvs")


@dataclass(frozen=True)
class Tool:
    name: str
    script: str  # file under benchmarks/peers/
    venv: str | None  # directory under benchmarks/.venvs/, or None for this interpreter
    api: str  # what is run, for the docs and the results
    profiles: bool = False  # has a "profile" mode
    forms: tuple[str, ...] = ("pandas-object", "pandas-categorical")  # input forms it takes


TOOLS: tuple[Tool, ...] = (
    Tool(
        "watchkeeper",
        "bench_watchkeeper.py",
        None,
        "watchkeeper.compare(ref, cur) defaults",
        profiles=True,
        forms=FORMS,
    ),
    Tool(
        "scipy-loop",
        "bench_scipy_loop.py",
        None,
        "ks_2samp per numeric / chi2_contingency per categorical, p<0.05",
    ),
    Tool(
        "evidently",
        "bench_evidently.py",
        "evidently",
        "Report([DataDriftPreset()]) defaults (Wasserstein / Jensen-Shannon, 0.1)",
    ),
    Tool(
        "nannyml",
        "bench_nannyml.py",
        "nannyml",
        "UnivariateDriftCalculator defaults (Jensen-Shannon, 10 chunks, 3-sigma)",
    ),
    Tool(
        "whylogs",
        "bench_whylogs.py",
        "whylogs",
        "why.log both frames + calculate_drift_scores (KS / chi2 on sketches)",
        profiles=True,
    ),
    Tool(
        "alibi-detect",
        "bench_alibi_detect.py",
        "alibi-detect",
        "TabularDrift(p_val=0.05) predict(drift_type='feature') (KS / chi2)",
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)

# Every tool runs with its usage telemetry off, so that no network attempt happens inside a
# timer (found in the peers' sources: evidently/telemetry.py and legacy/_config.py,
# nannyml/usage_logging.py, whylogs/api/usage_stats/__init__.py). Set for every tool alike.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",  # evidently (and the convention others follow)
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "NML_DISABLE_USAGE_LOGGING": "1",  # nannyml
    "WHYLOGS_NO_ANALYTICS": "True",  # whylogs
}


def get_tool(name: str) -> Tool:
    for tool in TOOLS:
        if tool.name == name:
            return tool
    raise KeyError(f"unknown tool {name!r}; known: {', '.join(TOOL_NAMES)}")


def interpreter(tool: Tool) -> Path | None:
    """The python that runs ``tool``, or None when its venv is not installed."""
    if tool.venv is None:
        return Path(sys.executable)
    python = VENVS_DIR / tool.venv / "bin" / "python"
    return python if python.exists() else None


def _last_json(stdout: str) -> dict[str, Any] | None:
    for raw in reversed(stdout.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "tool" in value:
                return value
    return None


def run_tool(
    tool: Tool,
    reference: Path,
    current: Path,
    mode: str,
    *,
    timeout: float,
    form: str = FORMS[0],
    log_path: Path | None = None,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run one tool in its own interpreter on input ``form``; always return a result dict
    (maybe an error)."""
    result: dict[str, Any] = {"tool": tool.name, "mode": mode, "input": form, "error": None}
    python = interpreter(tool)
    if python is None:
        result["error"] = (
            f"not installed: {VENVS_DIR.name}/{tool.venv} missing "
            "(run `bash benchmarks/setup_peers.sh`)"
        )
        return result
    cmd = [
        str(python),
        str(PEERS_DIR / tool.script),
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--mode",
        mode,
        "--input",
        form,
        *(extra_args or []),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PEERS_DIR,
            check=False,
            env={**os.environ, **TELEMETRY_OFF},
        )
    except subprocess.TimeoutExpired as exc:
        result["error"] = f"timed out after {timeout:.0f} s"
        stdout, stderr = _text(exc.stdout), _text(exc.stderr)
    else:
        stdout, stderr = proc.stdout, proc.stderr
        parsed = _last_json(stdout)
        if parsed is not None:
            result.update(parsed)
        else:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            result["error"] = f"exit {proc.returncode}, no result: " + " | ".join(tail)
    result["process_seconds"] = time.perf_counter() - start
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n")
    return result


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
