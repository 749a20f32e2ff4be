"""The PCA check's state as bytes (``multivariate.state``): read back, it judges a window as
``compare()``'s PCA check does against the same fit — the same value, threshold and decision —
with categorical features, a time-ordered reference (the threshold calibrated on its chunks)
and a window above the sample cap; the archive holds no pickled object."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.errors import InputError
from watchkeeper.multivariate import fit_multivariate, multivariate_drift
from watchkeeper.multivariate.drift import CURRENT_ROWS
from watchkeeper.multivariate.state import PcaState, pca_state
from watchkeeper.schema import infer_schema


def draw(rng: np.random.Generator, n: int, rho: float, t0: float = 0.0) -> pa.Table:
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    plan = np.where(xy[:, 0] + rng.normal(0, 0.5, n) > 0, "gold", "basic")
    return pa.table(
        {
            "ts": pa.array((t0 + np.arange(n) * 60.0).astype("datetime64[s]")),
            "income": xy[:, 0],
            "age": xy[:, 1],
            "plan": pa.array(np.where(rng.random(n) < 0.05, None, plan)),
            "z": rng.normal(0, 1, n),
        }
    )


@pytest.mark.parametrize("rows", [2_000, CURRENT_ROWS + 5_000])
@pytest.mark.parametrize("rho", [0.8, -0.8])
def test_a_state_read_back_judges_as_compare_does(rows: int, rho: float) -> None:
    rng = np.random.default_rng(3)
    reference = draw(rng, 30_000, 0.8)
    schema = infer_schema(reference, timestamp="ts")
    # shuffle the reference: its time order is not its row order
    reference = reference.take(pa.array(rng.permutation(reference.num_rows)))
    fit = fit_multivariate(reference, schema, 7)
    state = pca_state(fit, reference)
    assert state is not None
    back = PcaState.from_bytes(state.to_bytes())
    window = draw(rng, rows, rho, t0=1e9)
    chunks = None if rows < 10_000 else 5  # a window this large: 5 chunks, as asked
    expected = multivariate_drift(fit, reference, window, ("pca",), 0.01, 7, chunks)
    assert expected is not None
    want = expected.results["pca"]
    got = back.judge(schema, window, 0.01, chunks)
    assert got.statistic == want.statistic and got.threshold == want.threshold
    assert got.drifted is want.drifted is (rho < 0)
    assert got.details == want.details
    assert got.details["current_rows"] == min(rows, CURRENT_ROWS)
    assert got.details["reference_chunks"] > 0  # the chunks calibrated the threshold


def test_the_archive_holds_numbers_only_and_a_missing_column_is_a_note() -> None:
    rng = np.random.default_rng(4)
    reference = draw(rng, 3_000, 0.8)
    schema = infer_schema(reference, timestamp="ts")
    state = pca_state(fit_multivariate(reference, schema, 0), reference)
    assert state is not None
    blob = state.to_bytes()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for name in archive.namelist():
            array = np.load(archive.open(name), allow_pickle=False)  # raises on an object
            assert array.dtype != object, name
    result = PcaState.from_bytes(blob).judge(schema, reference.drop_columns(["age"]), 0.01)
    assert result.statistic is None and "age" in (result.note or "")


def test_a_single_feature_has_no_state_and_a_bad_archive_is_refused() -> None:
    table = pa.table({"x": np.arange(500.0), "y": np.arange(500.0)})
    schema = infer_schema(table, target="y")
    assert pca_state(fit_multivariate(table, schema, 0), table) is None
    with pytest.raises(InputError, match="format"):
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(b'{"format": 99}', dtype=np.uint8))
        PcaState.from_bytes(buf.getvalue())
