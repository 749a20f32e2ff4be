"""What the failing slices add to ``compare()``: the drift benchmark's data, with labels.

    python benchmarks/slices.py --rows 100000 1000000 --repeats 3

The reference and current frames of ``benchmarks/data.py`` (25 columns: 20 numeric, 5
categorical) get a binary target and a prediction that is wrong near the decision boundary of
``normal_0`` (``y = normal_0 + noise > 0``, ``p = normal_0 > 0``). ``compare(ref, cur,
target="y", prediction="p")`` is timed with ``slices=False``, ``slices={"pairs": False}`` and
``slices=True`` (the default: 25 features and 300 pairs), each the median of ``--repeats`` runs
after one warm-up. Prints one line per size and writes ``benchmarks/results/slices.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data
import watchkeeper

RESULTS = Path(__file__).resolve().parent / "results" / "slices.json"
SETTINGS: dict[str, Any] = {"off": False, "singles": {"pairs": False}, "default": True}


def labelled(table: pa.Table, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = table.column("normal_0").to_numpy()
    y = (x + rng.normal(0, 1, table.num_rows) > 0).astype(np.int64)
    table = table.append_column("y", pa.array(y))
    return table.append_column("p", pa.array((x > 0).astype(np.int64)))


def timed(ref: pa.Table, cur: pa.Table, slices: Any) -> tuple[float, watchkeeper.Report]:
    start = time.perf_counter()
    report = watchkeeper.compare(ref, cur, target="y", prediction="p", slices=slices)
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        ref = labelled(data.make_frame(rows, 0, False), 0)
        cur = labelled(data.make_frame(rows, 1, True), 1)
        row: dict[str, Any] = {"rows": rows}
        for name, slices in SETTINGS.items():
            timed(ref, cur, slices)  # warm-up
            runs = [timed(ref, cur, slices) for _ in range(args.repeats)]
            row[f"{name}_s"] = statistics.median(t for t, _ in runs)
            found = runs[0][1].failing_slices
            if found is not None:
                row[f"{name}_tested"] = found.tested
                row[f"{name}_reported"] = [s.description for s in found.slices]
        row["default_over_off"] = row["default_s"] / row["off_s"]
        row["singles_over_off"] = row["singles_s"] / row["off_s"]
        results.append(row)
        print(
            f"{rows:>9,} rows: off {row['off_s']:.2f} s, singles {row['singles_s']:.2f} s "
            f"(x{row['singles_over_off']:.2f}), singles + pairs {row['default_s']:.2f} s "
            f"(x{row['default_over_off']:.2f}); tested {row.get('default_tested')}, "
            f"reported {row.get('default_reported')}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
