"""False alarms of the calibrated drift decision on references whose rows are dependent.

    python benchmarks/dependence.py --trials 100

Each trial draws a reference (no timestamp, no ``reference_chunks``) and a current window of
the same process from ``tests/dependent_data.py`` (AR(1) rows, clustered rows like a census
extract sorted by state, a seasonal daily series, and independent rows), runs
``watchkeeper.compare`` at the default 1 % per-column false-alarm rate and counts the columns
flagged: every flag is a false alarm. The i.i.d. rows are also shifted by 0.1 standard
deviations to count detections. Prints one line per scenario: flags / column-trials.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import dependent_data

import watchkeeper

Scenario = Callable[[int], tuple[pa.Table, pa.Table]]
SCENARIOS: dict[str, Scenario] = {
    "ar1 phi=0.3": lambda s: dependent_data.ar1(s, phi=0.3),
    "ar1 phi=0.7": lambda s: dependent_data.ar1(s, phi=0.7),
    "clustered": dependent_data.clustered,
    "clustered, mild (levels 0.03 sd)": lambda s: dependent_data.clustered(s, spread=0.03),
    "seasonal": dependent_data.seasonal,
    "iid": dependent_data.iid,
    "iid shift 0.1 sd (detections)": lambda s: dependent_data.iid(s, shift=0.1),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    args = p.parse_args()
    print(f"watchkeeper from {Path(watchkeeper.__file__).parent}")
    for name, make in SCENARIOS.items():
        started, flags, cells = time.perf_counter(), 0, 0
        for seed in range(args.trials):
            ref, cur = make(seed)
            report = watchkeeper.compare(ref, cur)
            flags += len(report.drifted_columns)
            cells += len(report.checked)
        low, high = sps.binomtest(flags, cells).proportion_ci(0.95)
        print(
            f"{name:32s} {flags:4d} / {cells:4d} = {flags / cells:6.2%}"
            f"  (95 % CI {low:.2%}-{high:.2%}, {time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
