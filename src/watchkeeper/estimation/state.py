"""A fitted :class:`~watchkeeper.estimation.section.Estimator` as bytes, for a service that fits
it once per model version and estimates each window later, without the reference's rows.

:func:`estimator_to_bytes` writes a NumPy ``.npz`` archive (no pickle): one JSON document with
the task, the column names, the feature encoder, the reference's realized metrics and, for
CBPE, the calibration (its isotonic maps' breakpoints); for DLE, the two error models as
``skops`` bytes and the held-out variance factors. :func:`estimator_from_bytes` reads it back;
the error models are loaded only when ``skops`` finds in them no type beyond scikit-learn's
and :data:`TRUSTED_TYPES`, else :class:`~watchkeeper.errors.InputError`. The estimator read
back estimates exactly as the one written.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> from watchkeeper.estimation.section import estimated_section, fit_estimator
>>> from watchkeeper.schema import infer_schema
>>> rng = np.random.default_rng(0)
>>> s = rng.uniform(size=2000)
>>> ref = pa.table({"s": s, "pred": np.where(s > 0.5, "b", "a"),
...                 "y": np.where(rng.uniform(size=2000) < s, "b", "a")})
>>> est = fit_estimator(ref, infer_schema(ref, target="y", prediction="pred"), "y", "pred", ["s"])
>>> back = estimator_from_bytes(estimator_to_bytes(est))
>>> a, b = (estimated_section(e, ref.drop_columns(["y"]))[0] for e in (est, back))
>>> a["metrics"] == b["metrics"]
True
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.estimation.cbpe import CBPE
from watchkeeper.estimation.dle import DLE
from watchkeeper.estimation.features import FeatureEncoder
from watchkeeper.estimation.section import Estimator

__all__ = ["FORMAT", "TRUSTED_TYPES", "estimator_from_bytes", "estimator_to_bytes"]

FORMAT = 1  # the layout of the archive; a reader refuses another
# beyond scikit-learn's estimators (which skops trusts), the types a fitted
# HistGradientBoostingRegressor holds: its trees' predictor and, with categorical features,
# its encoder's ``functools.partial(check_array, ...)`` (skops lists the partial's function as
# a type of its own, so a partial of anything else is still refused)
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
)


def estimator_to_bytes(est: Estimator) -> bytes:
    meta: dict[str, Any] = {
        "format": FORMAT,
        "task": est.task,
        "target": est.target,
        "prediction": est.prediction,
        "scores": est.scores,
        "reference": est.reference,
        "encoder": None
        if est.encoder is None
        else {"numeric": est.encoder.numeric, "categories": est.encoder.categories},
    }
    arrays: dict[str, Any] = {}
    if isinstance(est.model, CBPE):
        meta["cbpe"] = est.model.to_dict()
    else:
        import skops.io as sio

        model = est.model
        meta["dle"] = {"c_abs": model.c_abs, "c_sq": model.c_sq, "holdout": model.holdout}
        blob = sio.dumps({"abs": model.abs_model, "sq": model.sq_model})
        arrays["models"] = np.frombuffer(blob, dtype=np.uint8)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # numbers and bytes only: nothing pickled
    return buf.getvalue()


def estimator_from_bytes(data: bytes) -> Estimator:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    if meta.get("format") != FORMAT:
        raise InputError(
            f"estimator state of format {meta.get('format')!r}; this release reads {FORMAT}"
        )
    enc = meta["encoder"]
    encoder = None if enc is None else FeatureEncoder(enc["numeric"], enc["categories"])
    model: CBPE | DLE
    if "cbpe" in meta:
        model = CBPE.from_dict(meta["cbpe"])
    else:
        import skops.io as sio

        blob = arrays["models"].tobytes()
        untrusted = [u for u in sio.get_untrusted_types(data=blob) if u not in TRUSTED_TYPES]
        if untrusted:
            raise InputError(f"the estimator state holds untrusted types: {untrusted}")
        models = sio.loads(blob, trusted=list(TRUSTED_TYPES))
        d = meta["dle"]
        model = DLE(models["abs"], models["sq"], float(d["c_abs"]), float(d["c_sq"]), d["holdout"])
    return Estimator(
        meta["task"],
        model,
        meta["target"],
        meta["prediction"],
        meta["scores"],
        encoder,
        meta["reference"],
    )
