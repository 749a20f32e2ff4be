"""A fitted estimator written as bytes and read back estimates exactly as the one written
(CBPE binary and multiclass, DLE with a categorical feature); the archive holds no pickle; a
state whose error models hold a type beyond the trusted ones is refused."""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.errors import InputError
from watchkeeper.estimation.section import Estimator, estimated_section, fit_estimator
from watchkeeper.estimation.state import estimator_from_bytes, estimator_to_bytes
from watchkeeper.schema import infer_schema


def _fit(table: pa.Table, scores: list[str] | None) -> Estimator:
    schema = infer_schema(table, target="y", prediction="pred", scores=scores)
    est = fit_estimator(table, schema, "y", "pred", scores)
    assert isinstance(est, Estimator), est
    return est


def _binary(rng: np.random.Generator, n: int) -> pa.Table:
    s = rng.uniform(size=n) ** 2
    return pa.table(
        {
            "s": s,
            "pred": np.where(s > 0.5, "b", "a"),
            "y": np.where(rng.uniform(size=n) < np.sqrt(s), "b", "a"),
        }
    )


def _multiclass(rng: np.random.Generator, n: int) -> pa.Table:
    p = rng.dirichlet([1, 1, 1], n)
    y = np.array([rng.choice(3, p=row) for row in p])
    names = np.array(["a", "b", "c"])
    return pa.table(
        {"pa": p[:, 0], "pb": p[:, 1], "pc": p[:, 2], "pred": names[p.argmax(1)], "y": names[y]}
    )


def _regression(rng: np.random.Generator, n: int) -> pa.Table:
    x = rng.uniform(0, 1, n)
    city = rng.choice(["oslo", "rome", "lima"], n)
    noise = 0.2 + x + (city == "lima")
    return pa.table({"x": x, "city": city, "pred": 3 * x, "y": 3 * x + rng.normal(0, noise)})


@pytest.mark.parametrize(
    ("make", "scores"),
    [(_binary, ["s"]), (_multiclass, ["pa", "pb", "pc"]), (_regression, None)],
    ids=["binary", "multiclass", "regression"],
)
def test_an_estimator_read_back_estimates_as_the_one_written(make, scores) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    est = _fit(make(rng, 2000), scores)
    data = estimator_to_bytes(est)
    back = estimator_from_bytes(data)
    window = make(rng, 700).drop_columns(["y"])
    a, _ = estimated_section(est, window)
    b, _ = estimated_section(back, window)
    assert a is not None and b is not None
    assert a["metrics"] == b["metrics"] and a["rows"] == b["rows"] == 700
    assert back.reference == est.reference and back.task == est.task
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # arrays of numbers and bytes only
        for name in archive.namelist():
            assert archive.read(name)[:6] == b"\x93NUMPY", name


def test_untrusted_types_in_the_error_models_are_refused() -> None:
    """A DLE object (not a trusted type), and a ``functools.partial`` of a function other than
    scikit-learn's ``check_array``, in place of the error models."""
    import skops.io as sio

    est = _fit(_regression(np.random.default_rng(1), 600), None)
    data = estimator_to_bytes(est)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {n: archive[n] for n in archive.files}
    for hostile in ({"abs": est.model, "sq": est.model}, {"abs": functools.partial(os.getcwd)}):
        arrays["models"] = np.frombuffer(sio.dumps(hostile), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        with pytest.raises(InputError, match="untrusted types"):
            estimator_from_bytes(buf.getvalue())


def test_another_format_is_refused() -> None:
    est = _fit(_binary(np.random.default_rng(2), 500), ["s"])
    with np.load(io.BytesIO(estimator_to_bytes(est)), allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
    meta["format"] = 99
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(InputError, match="format 99"):
        estimator_from_bytes(buf.getvalue())
