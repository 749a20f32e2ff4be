"""What the service's multivariate drift costs: the PCA state at registration, and per window
the PCA check (``multivariate_pca``) against the domain classifier the service leaves out.

    python benchmarks/window_multivariate.py                 # 200,000 reference rows × 25
    python benchmarks/window_multivariate.py --rows 50000    # a quick look

On the drift benchmark's data (``benchmarks/data.py``: 25 columns, numeric and categorical):

* registration: ``fit_multivariate`` + ``pca_state`` + ``to_bytes`` (CPU seconds) and the
  state's size in bytes (what ``wk_model_versions.reference_multivariate`` holds);
* per window of 1,000 / 10,000 / 100,000 rows: reading the window's feature columns back from
  a Parquet file (as the evaluator reads the lake), ``PcaState.judge`` (the service's check,
  at most 50,000 rows sampled) and ``multivariate_drift(..., ("classifier",))`` (the library's
  domain classifier, two samples of at most 5,000 rows); CPU seconds, median of ``--repeat``.

Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data import make_frame  # benchmarks/data.py: the script's directory is on the path
from watchkeeper.multivariate import fit_multivariate, multivariate_drift
from watchkeeper.multivariate.state import PcaState, pca_state
from watchkeeper.schema import infer_schema


def cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median CPU seconds of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="reference rows")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reference = make_frame(args.rows, seed=0, current=False)
    schema = infer_schema(reference)
    fitted, state = cpu(
        lambda: pca_state(fit_multivariate(reference, schema, 0), reference), args.repeat
    )
    assert state is not None
    blob = state.to_bytes()
    fit = fit_multivariate(reference, schema, 0)
    back = PcaState.from_bytes(blob)
    print(f"reference {args.rows:,} rows × {reference.num_columns} columns")
    print(f"registration: {fitted:.3f} s CPU, state {len(blob):,} bytes\n")
    print("| window rows | read (Parquet) | PCA check | domain classifier | classifier / PCA |")
    print("|---|---|---|---|---|")
    for rows in (1_000, 10_000, 100_000):
        window = make_frame(rows, seed=1, current=True)
        buf = io.BytesIO()
        pq.write_table(window, buf)
        data, columns = buf.getvalue(), state.encoder.columns

        def read_window(d: bytes = data, c: list[str] = columns) -> pa.Table:
            return pq.read_table(io.BytesIO(d), columns=c)

        read, table = cpu(read_window, args.repeat)
        pca, _ = cpu(lambda t=table: back.judge(schema, t, 0.01), args.repeat)
        clf, _ = cpu(
            lambda t=table: multivariate_drift(fit, reference, t, ("classifier",), 0.01, 0),
            args.repeat,
        )
        print(f"| {rows:,} | {read:.3f} s | {pca:.3f} s | {clf:.3f} s | {clf / pca:.0f}× |")


if __name__ == "__main__":
    main()
