"""The floor of the serving benchmark: a bare FastAPI app and the same runtimes, no monitoring.

It answers ``POST /predict/{kind}`` (``kind`` = ``onnx`` or ``sklearn``) with the body
watchkeeper's ``/v1/models/{model}/predict`` takes (``{"rows": [{feature: value}]}``) and the
same content in the answer (the predictions and a score per class), scoring in the thread
pool as watchkeeper does; nothing is validated, logged or stored. The artifacts are the files
watchkeeper serves: ``SERVING_FLOOR_ONNX`` and ``SERVING_FLOOR_SKOPS`` name them, and
``SERVING_FLOOR_FEATURES`` the features in the model's order.

    SERVING_FLOOR_ONNX=m.onnx SERVING_FLOOR_SKOPS=m.skops SERVING_FLOOR_FEATURES=f0,f1 \\
        uvicorn --app-dir benchmarks serving_floor:app --port 8710 --log-level warning
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import skops.io as sio
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

FEATURES = os.environ["SERVING_FLOOR_FEATURES"].split(",")
ONNX = ort.InferenceSession(os.environ["SERVING_FLOOR_ONNX"], providers=["CPUExecutionProvider"])
ONNX_INPUT = ONNX.get_inputs()[0].name
SKLEARN = sio.load(os.environ["SERVING_FLOOR_SKOPS"])  # written by the benchmark itself

app = FastAPI()


def _onnx(x: np.ndarray[Any, Any]) -> tuple[list[Any], np.ndarray[Any, Any], list[str]]:
    labels, proba = ONNX.run(None, {ONNX_INPUT: x.astype(np.float32)})
    return labels.tolist(), proba, ["no", "yes"]


def _sklearn(x: np.ndarray[Any, Any]) -> tuple[list[Any], np.ndarray[Any, Any], list[str]]:
    frame = pd.DataFrame(x, columns=FEATURES)  # fit on a DataFrame: fed by name
    predictions = SKLEARN.predict(frame).tolist()  # both calls, as watchkeeper makes them
    proba = SKLEARN.predict_proba(frame)
    return predictions, proba, [str(c) for c in SKLEARN.classes_]


@app.post("/predict/{kind}")
async def predict(kind: str, request: Request) -> dict[str, Any]:
    rows = (await request.json())["rows"]
    x = np.asarray([[float(r[f]) for f in FEATURES] for r in rows], dtype=np.float64)
    run = _onnx if kind == "onnx" else _sklearn
    predictions, proba, classes = await run_in_threadpool(run, x)
    return {
        "predictions": predictions,
        "scores": [dict(zip(classes, map(float, p), strict=True)) for p in proba],
    }
