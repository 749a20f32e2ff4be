"""Models of the serving routes: artifacts, ``/v1/.../predict`` and the Open Inference
Protocol v2 (``/v2/...``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from watchkeeper.server.schemas import In, Out

Scalar = str | float | int | bool | None


class ArtifactUri(In):
    """An MLflow model to attach by URI (the body is JSON)."""

    uri: str = Field(description="models:/name@alias, models:/name/1 or runs:/<id>/model")
    features: list[str] | None = Field(None, description="input names, for unnamed inputs")


class Artifact(Out):
    model: str
    version: str
    format: str = Field(description="onnx, skops, pickle or mlflow")
    sha256: str
    size: int
    uri: str | None = None
    features: list[str] = Field(description="the model's inputs, in its order")
    trusted: list[str] = Field(description="skops types (and pickle) trusted explicitly")
    signature: dict[str, Any] = Field(description="inputs, outputs (OIP tensors), classes")
    attached_at: float


class PredictRows(In):
    """``{"rows": [{feature: value, ...}, ...]}``, optionally with ``prediction_ids``."""

    rows: list[dict[str, Scalar]]
    prediction_ids: list[str] | None = None


class PredictColumns(In):
    """``{"columns": {feature: [value, ...], ...}}``, optionally with ``prediction_ids``."""

    columns: dict[str, list[Scalar]]
    prediction_ids: list[str] | None = None


class Predicted(Out):
    model: str
    version: str = Field(description="the version that answered (the champion by default)")
    prediction_ids: list[str] = Field(description="send the labels with these ids")
    predictions: list[Scalar]
    scores: list[dict[str, float]] | None = Field(None, description="class → probability")
    latency_ms: float = Field(description="the model's scoring time for the request")


class InferTensor(In):
    """A request tensor: one per feature (``[N]`` or ``[N, 1]``) or one ``[N, k]``."""

    model_config = In.model_config | {"extra": "allow"}

    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, INT8..INT64, UINT8..UINT64, FP16..FP64, BYTES")
    data: list[Any] = Field(description="flat (row-major) or nested")
    parameters: dict[str, Any] | None = None


class InferRequest(In):
    """An Open Inference Protocol v2 inference request."""

    model_config = In.model_config | {"extra": "allow"}

    id: str | None = Field(None, description="echoed in the response")
    parameters: dict[str, Any] | None = Field(
        None, description="prediction_ids: one id per row (else generated)"
    )
    inputs: list[InferTensor]
    outputs: list[dict[str, Any]] | None = Field(None, description="predict, predict_proba")


class InferResponse(Out):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(description="prediction_ids: the ids of the rows")
    outputs: list[dict[str, Any]] = Field(description="predict, predict_proba")


class ModelMetadata(Out):
    name: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


class Ready(Out):
    name: str | None = None
    ready: bool


class Live(Out):
    live: bool


class ServerMetadata(Out):
    name: str
    version: str
    extensions: list[str]


class Contribution(Out):
    feature: str
    value: Scalar = Field(description="the row's value of the feature")
    contribution: float = Field(description="its SHAP value: its part of output − expected")


class ExplainedRow(Out):
    prediction: Scalar = Field(None, description="what the model answers for the row")
    scores: dict[str, float] | None = Field(None, description="class → probability")
    output: float = Field(description="the number explained (see explained)")
    expected_value: float = Field(description="the explainer's expected value of the output")
    contributions: list[Contribution] = Field(description="the top contributions, largest first")


class Explained(Out):
    model: str
    version: str
    prediction_id: str | None = None
    method: str = Field(description="shap_tree, shap_linear or shap_permutation")
    explained: str = Field(description='"prediction", or the class whose score is explained')
    source: str = Field(description='"model" (the served artifact) or "surrogate"')
    approximate: bool = Field(description="true for a surrogate's explanation")
    fidelity: dict[str, Any] | None = Field(
        None, description="the surrogate's held-out fidelity (metric, value, rows)"
    )
    rows: list[ExplainedRow]
