"""Loading a model artifact into memory: one class per runtime, one ``predict`` shape.

* **onnx** — an ONNX graph run by onnxruntime: one input per feature (``[N, 1]`` or ``[N]``)
  or one 2-D input whose columns are the features in order. The first output is the
  prediction; a second (skl2onnx's probabilities, a ``[N, k]`` tensor or a sequence of maps)
  the class scores, the classes read from the classifier node's ``classlabels_*``.
* **skops** — a scikit-learn estimator in the skops format, loaded with only the types the
  caller trusts (:func:`skops.io.get_untrusted_types`): loading runs no arbitrary code.
* **pickle** — pickle or joblib: loading *runs code* chosen by whoever wrote the file, so it is
  loaded only when trusted explicitly (``trust_pickle``).
* **mlflow** — an MLflow pyfunc model from a tracking/registry store (``models:/name@alias``,
  ``models:/name/1``, ``runs:/<id>/model``); scores through the underlying model's
  ``predict_proba`` when it has one.

skops and scikit-learn are installed with watchkeeper (the demo serves a scikit-learn model);
onnxruntime and MLflow are optional: ``pip install 'watchkeeper[serve]'`` and
``'watchkeeper[mlflow]'``; without them a clear error names the extra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.errors import InputError, WatchkeeperError

FORMATS = ("onnx", "skops", "mlflow", "pickle")
EXTRAS = {"onnxruntime": "serve", "skops": "serve", "mlflow": "mlflow"}
ONNX_TYPES = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}


class MissingExtra(WatchkeeperError):
    """A runtime of an optional extra is not installed on the server."""

    http_status = 501


class UntrustedArtifact(InputError):
    """The artifact would run code, or build types, nobody said to trust."""


class ModelLoadError(WatchkeeperError):
    """The artifact did not load, or the model failed to score."""

    http_status = 500


def runtime(module: str) -> Any:
    """Import an optional runtime, or :class:`MissingExtra` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".", maxsplit=1)[0], "serve")
        raise MissingExtra(
            f"{module} is not installed ({exc}); install it with pip install 'watchkeeper[{extra}]'"
        ) from None


@dataclass
class Scored:
    """What a model said about N rows: predictions, and class scores when it gives them."""

    predictions: list[Any]
    scores: np.ndarray[Any, Any] | None = None  # [N, len(classes)]
    classes: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    """A model in memory: its runtime object, its input names in its order, its signature."""

    format: str
    model: Any
    features: list[str]
    inputs: list[dict[str, Any]]  # OIP metadata tensors: name, datatype, shape
    outputs: list[dict[str, Any]]
    classes: list[str] = field(default_factory=list)

    def predict(self, columns: dict[str, np.ndarray[Any, Any]]) -> Scored:
        """Score rows given as one array per feature (all of :attr:`features`)."""
        if self.format == "onnx":
            return _onnx_predict(self, columns)
        if self.format == "mlflow":
            return _mlflow_predict(self, columns)
        return _sklearn_predict(self, self.model, _frame(self.model, self.features, columns))


def load(
    fmt: str,
    *,
    path: Path | None = None,
    uri: str | None = None,
    features: list[str] | None = None,
    trusted: list[str] | None = None,
    tracking_uri: str | None = None,
) -> Loaded:
    """Load an artifact; ``features`` names the columns of a model whose inputs are unnamed
    (a single 2-D tensor, an estimator fit on an array)."""
    trusted = list(trusted or [])
    if fmt == "onnx":
        assert path is not None
        return _load_onnx(path, features)
    if fmt == "skops":
        assert path is not None
        sio = runtime("skops.io")
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
        if untrusted:
            raise UntrustedArtifact(
                f"the skops file has types that are not trusted: {', '.join(untrusted)}; "
                "list them as trusted (trusted=..., --trust-type) only if you trust the file"
            )
        return _sklearn_loaded("skops", sio.load(path, trusted=trusted), features)
    if fmt == "pickle":
        assert path is not None
        if "pickle" not in trusted:
            raise UntrustedArtifact(
                "pickle/joblib artifacts run code when loaded: refused unless trusted "
                "explicitly (trust_pickle=true, --trust-pickle); prefer ONNX or skops"
            )
        import joblib  # type: ignore[import-untyped]  # no stubs; scikit-learn's dependency

        return _sklearn_loaded("pickle", joblib.load(path), features)
    if fmt == "mlflow":
        assert uri is not None
        return _load_mlflow(uri, features, tracking_uri)
    raise InputError(f"artifact format {fmt!r}: use one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------ scikit-learn
def _sklearn_loaded(fmt: str, model: Any, features: list[str] | None) -> Loaded:
    if not hasattr(model, "predict"):
        raise InputError(f"the {fmt} artifact holds a {type(model).__name__}, not a model")
    names = getattr(model, "feature_names_in_", None)
    found = [str(n) for n in names] if names is not None else list(features or [])
    width = getattr(model, "n_features_in_", None)
    if width is not None and len(found) != width:
        raise InputError(
            f"the model takes {width} unnamed inputs but {len(found)} features were given "
            f"({found}): name its inputs in order with features=..."
        )
    classes = [str(c) for c in getattr(model, "classes_", [])]
    outputs = [{"name": "predict", "datatype": "BYTES" if classes else "FP64", "shape": [-1]}]
    if classes and hasattr(model, "predict_proba"):
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    inputs = [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in found]
    return Loaded(fmt, model, found, inputs, outputs, classes)


def _frame(model: Any, features: list[str], columns: dict[str, np.ndarray[Any, Any]]) -> Any:
    """The estimator's input: a DataFrame when it was fit on one (pandas present), else a
    2-D array in feature order."""
    if getattr(model, "feature_names_in_", None) is not None:
        try:
            import pandas as pd
        except ImportError:
            pass
        else:
            return pd.DataFrame({n: columns[n] for n in features})
    arrays = [columns[n] for n in features]
    numeric = all(a.dtype.kind in "biuf" for a in arrays)
    return np.column_stack(arrays).astype(np.float64 if numeric else object)


def _sklearn_predict(loaded: Loaded, model: Any, x: Any) -> Scored:
    predictions = np.asarray(model.predict(x))
    scores = None
    if loaded.classes and hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(x), dtype=np.float64)
    return Scored(predictions.tolist(), scores, loaded.classes)


# ------------------------------------------------------------------------------ ONNX
def _load_onnx(path: Path, features: list[str] | None) -> Loaded:
    ort = runtime("onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(f"the artifact is not an ONNX model onnxruntime can run: {exc}") from None
    inputs = [_tensor(i) for i in session.get_inputs()]
    outputs = [_tensor(o) for o in session.get_outputs()]
    meta = session.get_modelmeta().custom_metadata_map.get("feature_names")
    if len(inputs) > 1:
        found = [i["name"] for i in inputs]
    else:
        found = meta.split(",") if meta else list(features or [])
        width = inputs[0]["shape"][-1] if len(inputs[0]["shape"]) == 2 else None
        if isinstance(width, int) and width > 0 and len(found) != width:
            raise InputError(
                f"the ONNX input {inputs[0]['name']!r} has {width} columns but {len(found)} "
                f"features were given ({found}): name its columns in order with features=..."
            )
    return Loaded("onnx", session, found, inputs, outputs, _onnx_classes(path))


def _tensor(arg: Any) -> dict[str, Any]:
    datatype = ONNX_TYPES.get(arg.type, (arg.type, None))[0]
    shape = [d if isinstance(d, int) else -1 for d in (arg.shape or [])]
    return {"name": arg.name, "datatype": datatype, "shape": shape}


def _onnx_classes(path: Path) -> list[str]:
    """The class labels of a classifier node (skl2onnx writes them), else none."""
    try:
        onnx = importlib.import_module("onnx")
    except ImportError:
        return []
    graph = onnx.load(str(path)).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings":
                return [s.decode() for s in attr.strings]
            if attr.name in ("classlabels_int64s", "classlabels_ints"):
                return [str(i) for i in attr.ints]
    return []


def _onnx_predict(loaded: Loaded, columns: dict[str, np.ndarray[Any, Any]]) -> Scored:
    session = loaded.model
    specs = session.get_inputs()
    if len(specs) > 1:
        feed = {s.name: _as_onnx(columns[s.name], s).reshape(_rows_shape(s)) for s in specs}
    else:
        spec = specs[0]
        feed = {spec.name: np.column_stack([_as_onnx(columns[n], spec) for n in loaded.features])}
    result = session.run(None, feed)
    predictions = np.asarray(result[0]).reshape(-1)
    scores = None
    if len(result) > 1 and loaded.classes:
        probs = result[1]
        if isinstance(probs, list):  # ZipMap: a map per row
            probs = [[row[_key(row, c)] for c in loaded.classes] for row in probs]
        scores = np.asarray(probs, dtype=np.float64)
    return Scored(predictions.tolist(), scores, loaded.classes)


def _as_onnx(values: np.ndarray[Any, Any], spec: Any) -> np.ndarray[Any, Any]:
    dtype = ONNX_TYPES.get(spec.type, ("", np.float32))[1]
    if dtype is np.object_:
        return np.asarray([None if v is None else str(v) for v in values], dtype=object)
    return np.asarray(values, dtype=dtype)


def _rows_shape(spec: Any) -> tuple[int, ...]:
    return (-1,) if len(spec.shape or []) == 1 else (-1, 1)


def _key(row: dict[Any, Any], label: str) -> Any:
    return label if label in row else int(label)


# ------------------------------------------------------------------------------ MLflow
def _load_mlflow(uri: str, features: list[str] | None, tracking_uri: str | None) -> Loaded:
    mlflow = runtime("mlflow")
    pyfunc = runtime("mlflow.pyfunc")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        model = pyfunc.load_model(uri)
    except Exception as exc:
        raise InputError(f"MLflow could not load {uri!r}: {exc}") from None
    schema = model.metadata.get_input_schema()
    names = schema.input_names() if schema is not None and schema.has_input_names() else None
    found = [str(n) for n in names] if names else list(features or [])
    raw = _raw(model)
    classes = [str(c) for c in getattr(raw, "classes_", [])]
    inputs = [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in found]
    outputs = [{"name": "predict", "datatype": "BYTES" if classes else "FP64", "shape": [-1]}]
    if classes and hasattr(raw, "predict_proba"):
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return Loaded("mlflow", model, found, inputs, outputs, classes)


def _raw(model: Any) -> Any:
    try:
        return model.get_raw_model()
    except Exception:
        return None


def _mlflow_predict(loaded: Loaded, columns: dict[str, np.ndarray[Any, Any]]) -> Scored:
    import pandas as pd

    frame = pd.DataFrame({n: columns[n] for n in loaded.features})
    predictions = np.asarray(loaded.model.predict(frame)).reshape(-1)
    raw = _raw(loaded.model)
    scores = None
    if loaded.classes and hasattr(raw, "predict_proba"):
        scores = np.asarray(raw.predict_proba(frame), dtype=np.float64)
    return Scored(predictions.tolist(), scores, loaded.classes)
