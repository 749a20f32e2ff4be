"""Attributions of a 10,000-row window: watchkeeper next to SHAP alone, in one run.

The model: scikit-learn's ``HistGradientBoostingRegressor`` with 100 trees (31 leaves each, the
default) on 20 numeric features, fitted on 20,000 generated rows. The window: 10,000 fresh
rows, a shift on two features. Everything is built before the timers.

Timed, each ``--repeat`` times (the median is reported):

* **shap alone** — ``shap.TreeExplainer(model).shap_values(window)``: SHAP's exact tree
  algorithm on all 10,000 rows, called directly (the baseline);
* **watchkeeper, every row** — ``Explainer.explain`` on all 10,000 rows: the same algorithm,
  the rows split over the machine's cores (SHAP's C++ walk releases the GIL);
* **watchkeeper, window check** — what ``compare(..., model=...)`` and ``Reference.analyze``
  do per window once the reference is fitted: explain a random sample of the window
  (``WINDOW_ROWS``) and decide attribution drift (the null replicates simulated, not cached).

Reported: wall and CPU seconds (every thread), the most threads seen, and whether the 2 s goal
holds. The attributions of the window's sample are checked against SHAP's on the same rows.

    python benchmarks/attributions.py [--repeat 3] [--out results/attributions.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import shap
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingRegressor

import watchkeeper
from watchkeeper.attributions import fit_attributions, window_attributions
from watchkeeper.attributions.fit import WINDOW_ROWS
from watchkeeper.schema import infer_schema

FEATURES, TREES, WINDOW, TRAIN = 20, 100, 10_000, 20_000
GOAL_SECONDS = 2.0


class Threads:
    """The most threads of this process seen while it runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(os.listdir("/proc/self/task")) - 1)  # not itself
            time.sleep(0.005)

    def __enter__(self) -> Threads:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], Any]) -> dict[str, float]:
    with Threads() as threads:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": wall, "cpu_seconds": cpu, "threads": threads.most}


def data(seed: int = 0) -> tuple[HistGradientBoostingRegressor, pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=FEATURES)

    def rows(n: int, shift: float) -> np.ndarray:
        x = rng.normal(size=(n, FEATURES))
        x[:, :2] += shift
        return x

    x = rows(TRAIN, 0.0)
    y = x @ weights + np.sin(3 * x[:, 0]) * x[:, 1] + rng.normal(0, 0.5, TRAIN)
    model = HistGradientBoostingRegressor(max_iter=TREES, early_stopping=False, random_state=0)
    model.fit(x, y)
    names = [f"f{j:02d}" for j in range(FEATURES)]
    ref = pa.table({n: x[:, j] for j, n in enumerate(names)})
    win = rows(WINDOW, 0.5)
    return model, ref, pa.table({n: win[:, j] for j, n in enumerate(names)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    console = Console()
    load_start = os.getloadavg()[0]
    with console.status("building the model and the data"):
        model, ref, window = data()
        fit = fit_attributions(ref, infer_schema(ref), model, None, seed=0)
        assert fit.explainer is not None
        explainer = fit.explainer
        x = fit.codes.matrix(window)
        # the same answer as SHAP's on the same rows
        sample = x[:500]
        np.testing.assert_allclose(
            explainer.explain(sample).values,
            shap.TreeExplainer(model).shap_values(sample, check_additivity=False),
            atol=1e-9,
        )
    runs: dict[str, list[dict[str, float]]] = {"shap": [], "every_row": [], "window_check": []}

    def window_check() -> None:
        fit.nulls.clear()  # simulate the null each time, as for a window of a new size
        window_attributions(fit, window, 0.01)

    jobs = {
        "shap": lambda: shap.TreeExplainer(model).shap_values(x, check_additivity=False),
        "every_row": lambda: explainer.explain(x),
        "window_check": window_check,
    }
    with console.status("timing") as status:
        for i in range(args.repeat):
            for name, job in jobs.items():
                status.update(f"timing {name}, round {i + 1} of {args.repeat}")
                runs[name].append(timed(job))
    load_end = os.getloadavg()[0]
    labels = {
        "shap": "shap alone (TreeExplainer.shap_values), all 10,000 rows",
        "every_row": "watchkeeper, all 10,000 rows (rows split over the cores)",
        "window_check": f"watchkeeper, window check ({WINDOW_ROWS:,} sampled rows + decision)",
    }
    results: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "watchkeeper_version": watchkeeper.__version__,
        "shap_version": shap.__version__,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1min": [round(load_start, 2), round(load_end, 2)],
        "repeat": args.repeat,
        "model": f"HistGradientBoostingRegressor, {TREES} trees, {FEATURES} features",
        "rows": WINDOW,
        "results": {},
    }
    table = Table(
        title=f"Attributions of a {WINDOW:,}-row window, {TREES} trees, {FEATURES} features"
    )
    for col in (
        "what runs",
        "wall s",
        "CPU s",
        "threads",
        "wall / shap's",
        f"≤ {GOAL_SECONDS:g} s",
    ):
        table.add_column(col, justify="left" if col == "what runs" else "right")
    base = statistics.median(r["seconds"] for r in runs["shap"])
    for name, rs in runs.items():
        wall = statistics.median(r["seconds"] for r in rs)
        cpu = statistics.median(r["cpu_seconds"] for r in rs)
        most = max(r["threads"] for r in rs)
        results["results"][name] = {
            "seconds": wall,
            "cpu_seconds": cpu,
            "threads": most,
            "runs": rs,
        }
        table.add_row(
            labels[name],
            f"{wall:.2f}",
            f"{cpu:.2f}",
            str(most),
            f"{wall / base:.2f}x",
            "yes" if wall <= GOAL_SECONDS else "no",
        )
    console.print(table)
    console.print(f"1-minute load average {load_start:.2f} at start, {load_end:.2f} at end")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
