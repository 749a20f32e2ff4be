"""Shared measurement harness for one tool in one fresh interpreter.

Every ``bench_<tool>.py`` script runs in the tool's own virtual environment, so this
module depends on the standard library only (plus pyarrow, which every venv has).

Protocol: ``python bench_<tool>.py --reference R.parquet --current C.parquet
--mode drift|profile`` prints, as its LAST stdout line, one JSON object::

    {"tool": ..., "mode": ..., "seconds": ..., "extra_peak_mb": ..., "flagged": [...],
     "rows": ..., "version": ..., "details": {...}, "error": null}

``--mode chunks --chunk-size N [--budget S]`` (``benchmarks/analyze.py``) runs the tool's
``chunks`` step over the current frame in chunks of N rows; its ``details`` hold ``cells``
(``[chunk, column]`` pairs flagged), ``chunks`` (how many there are) and ``done`` (how many
ran: fewer when a time budget of S seconds stopped the run).

Measurement:
* ``load`` runs first, untimed: it reads the parquet files into the input form asked for
  with ``--input`` (:data:`FORMS`): pandas DataFrames whose string columns hold plain
  Python strings (``object`` dtype, what ``read_csv`` and most pipelines give), pandas
  DataFrames with ``category`` columns, or pyarrow Tables. Every tool gets the same form.
* After loading, ``gc.collect()`` and the kernel's peak-RSS high-water mark is reset
  (``/proc/self/clear_refs`` = 5), so the peak that follows belongs to detection only.
  Where that reset is unavailable, ``ru_maxrss`` is used and load peaks may dominate.
* ``seconds`` is wall time of ``run`` only; ``cpu_seconds`` the process's CPU time (every
  thread) over the same span; ``threads`` the most threads the process had meanwhile
  (sampled every 5 ms from ``/proc/self/task``, the sampler itself not counted);
  ``extra_peak_mb`` is the peak RSS during ``run`` minus the RSS right after loading.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1024 * 1024

#: The input forms a tool can be given: (pandas, object strings) is the one a user most
#: often has, and the headline; each tool script says which forms it takes.
FORMS = ("pandas-object", "pandas-categorical", "arrow")
PANDAS_FORMS = FORMS[:2]


@dataclass
class Outcome:
    """What a tool's detection step returns."""

    flagged: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inputs:
    reference_path: Path
    current_path: Path
    mode: str
    chunk_size: int | None = None  # chunked mode (benchmarks/analyze.py): rows per chunk
    budget: float | None = None  # chunked mode: stop starting chunks after this many seconds
    form: str = "pandas-object"


def _proc_status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_mb() -> float:
    kb = _proc_status_kb("VmRSS")
    if kb is None:  # no procfs: best effort
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


def _peak_mb(reset_ok: bool) -> float:
    kb = _proc_status_kb("VmHWM") if reset_ok else None
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024


class ThreadCount:
    """The most threads of this process while the block runs, but this sampler's own."""

    def __init__(self) -> None:
        self.most = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _count(self) -> int:
        try:
            return len(os.listdir("/proc/self/task")) - 1
        except OSError:
            return threading.active_count() - 1

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.most = max(self.most, self._count())

    def __enter__(self) -> ThreadCount:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def categorical_columns(schema: Any) -> list[str]:
    """Columns of a pyarrow schema that hold strings or dictionary-encoded values."""
    import pyarrow as pa

    out = []
    for f in schema:
        t = f.type
        if pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            out.append(f.name)
    return out


def read_pandas(path: Path, form: str = "pandas-object") -> Any:
    """Parquet -> pandas DataFrame: string columns as ``object`` (plain Python strings, one
    object per distinct value as pyarrow deduplicates them) or as ``category``."""
    import pandas as pd
    import pyarrow.parquet as pq

    df = pq.read_table(path).to_pandas()
    if form == "pandas-object":
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col].dtype):
                df[col] = df[col].astype(object)
    elif form != "pandas-categorical":
        raise ValueError(f"not a pandas input form: {form!r}")
    return df


def read_frames(inputs: Inputs, forms: tuple[str, ...] = PANDAS_FORMS) -> tuple[Any, Any]:
    """The reference and the current data in ``inputs.form``, one of ``forms`` (the forms
    the calling tool takes)."""
    if inputs.form not in forms:
        raise NotImplementedError(f"this tool takes {', '.join(forms)}, not {inputs.form}")
    if inputs.form == "arrow":
        import pyarrow.parquet as pq

        return pq.read_table(inputs.reference_path), pq.read_table(inputs.current_path)
    return read_pandas(inputs.reference_path, inputs.form), read_pandas(
        inputs.current_path, inputs.form
    )


def string_columns(df: Any) -> list[str]:
    """The categorical columns of a pandas DataFrame: ``category`` or any non-numeric dtype."""
    import pandas as pd

    return [
        c
        for c in df.columns
        if isinstance(df[c].dtype, pd.CategoricalDtype)
        or not pd.api.types.is_numeric_dtype(df[c].dtype)
    ]


def _dtypes(data: Any) -> list[str]:
    if hasattr(data, "dtypes"):  # pandas
        return sorted({str(t) for t in data.dtypes})
    if hasattr(data, "schema"):  # pyarrow
        return sorted({str(t) for t in data.schema.types})
    return []


def _parse(argv: list[str] | None) -> Inputs:
    p = argparse.ArgumentParser()
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--current", type=Path, required=True)
    p.add_argument("--mode", choices=["drift", "profile", "chunks"], default="drift")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--budget", type=float, default=None)
    p.add_argument("--input", choices=FORMS, default=FORMS[0])
    a = p.parse_args(argv)
    return Inputs(a.reference, a.current, a.mode, a.chunk_size, a.budget, a.input)


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.flush()
    print("\n" + json.dumps(payload, default=str), flush=True)


def main(
    tool: str,
    version: Callable[[], str],
    load: Callable[[Inputs], Any],
    detect: Callable[[Any], Outcome] | None,
    *,
    profile: Callable[[Any], int] | None = None,
    chunks: Callable[[Any], Outcome] | None = None,
    argv: list[str] | None = None,
) -> None:
    """Load untimed, run ``detect`` (drift) or ``profile`` (returns rows) timed, report.

    Never raises: any failure becomes ``"error"`` in the JSON line (exit code 0), so the
    orchestrator can keep going and show the message.
    """
    inputs = _parse(argv)
    payload: dict[str, Any] = {
        "tool": tool,
        "mode": inputs.mode,
        "input": inputs.form,
        "seconds": None,
        "extra_peak_mb": None,
        "flagged": [],
        "rows": None,
        "version": None,
        "python": platform.python_version(),
        "details": {},
        "error": None,
    }
    try:
        payload["version"] = version()
        step = {"drift": detect, "profile": profile, "chunks": chunks}[inputs.mode]
        if step is None:
            raise NotImplementedError(f"{tool} has no {inputs.mode} mode")
        data = load(inputs)
        payload["input_dtypes"] = _dtypes(data[0] if isinstance(data, tuple) else data)
        if inputs.mode == "chunks":  # the chunk options travel with the data
            data = (*data, inputs)
        gc.collect()
        reset_ok = _reset_peak()
        rss_after_load = _rss_mb()
        with ThreadCount() as counted:
            start, cpu_start = time.perf_counter(), time.process_time()
            result = step(data)
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
        peak = _peak_mb(reset_ok)
        payload.update(
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            threads=counted.most,
            rss_after_load_mb=round(rss_after_load, 1),
            peak_rss_mb=round(peak, 1),
            extra_peak_mb=round(max(0.0, peak - rss_after_load), 1),
            peak_reset=reset_ok,
        )
        if isinstance(result, Outcome):
            payload["flagged"] = sorted(result.flagged)
            payload["details"] = result.details
        else:
            payload["rows"] = int(result)
            payload["rows_per_s"] = result / seconds if seconds > 0 else None
    except BaseException as exc:  # report everything, incl. SystemExit from deep inside a tool
        tb = traceback.format_exc(limit=6)
        payload["error"] = f"{type(exc).__name__}: {exc}".strip()[:2000]
        payload["traceback"] = tb[-4000:]
    emit(payload)
