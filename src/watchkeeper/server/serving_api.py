"""The serving routes (docs/serving.md): a version's artifact, ``POST /v1/models/{model}/
predict`` and the Open Inference Protocol v2 (``/v2/...``), as KServe, Triton and Seldon
clients call it. Every scored request becomes the model's prediction events, in process
(``serving.predict``); scoring runs in the thread pool, never on the event loop.

Attaching an artifact needs the ``admin`` scope, scoring ``ingest`` (it writes events), the
metadata and explaining (``/explain``, which logs nothing) ``read``; ``/v2/health/live`` and
``/v2/health/ready`` are open.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from watchkeeper import __version__
from watchkeeper.errors import InputError
from watchkeeper.schema import ColumnType, Schema
from watchkeeper.server.bodies import UNTYPED, read_body, read_json
from watchkeeper.server.deps import ServedDep, SettingsDep, StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.openapi import request_body
from watchkeeper.server.params import NO_NUL
from watchkeeper.server.schemas.serving import (
    Artifact,
    ArtifactUri,
    Explained,
    InferRequest,
    InferResponse,
    Live,
    ModelMetadata,
    PredictColumns,
    Predicted,
    PredictRows,
    Ready,
    ServerMetadata,
)
from watchkeeper.serving import oip, oip_binary
from watchkeeper.serving.artifacts import CONTENT_TYPES, artifact, attach
from watchkeeper.serving.explain import (
    DEFAULT_TOP,
    MAX_ROWS,
    explain_logged,
    explainers_of,
    input_columns,
    keep_shares_later,
)
from watchkeeper.serving.predict import Answer, predict_rows, score
from watchkeeper.serving.registry import ServedModels

router = APIRouter(tags=["serving"], dependencies=[NO_NUL])
PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "skops": "sklearn_skops",
    "pickle": "sklearn_pickle",
    "mlflow": "mlflow_pyfunc",
}
IDS_HEADER = "x-prediction-ids"  # comma-separated, one per row


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


@router.put(
    "/v1/models/{model}/versions/{version}/artifact",
    response_model=Artifact,
    responses=errors(400, 401, 403, 404, 413, 422, 501),
    openapi_extra=request_body(
        "the model file (ONNX, skops; pickle only with trust_pickle), or an MLflow URI",
        {
            "application/json": ArtifactUri,
            "application/octet-stream": None,
            **dict.fromkeys(CONTENT_TYPES),  # onnx, skops and pickle files
        },
    ),
)
async def put_artifact(
    request: Request,
    model: str,
    version: str,
    served: ServedDep,
    settings: SettingsDep,
    format: Annotated[
        str | None, Query(description="onnx, skops or pickle (else from the content type)")
    ] = None,
    features: Annotated[
        str | None, Query(description="input names in the model's order, comma-separated")
    ] = None,
    trusted: Annotated[
        str | None, Query(description="skops types to trust, comma-separated")
    ] = None,
    trust_pickle: Annotated[
        bool, Query(description="load a pickle/joblib file: it runs code when loaded")
    ] = False,
) -> object:
    """Attach (or replace) the version's model artifact; it is loaded and checked first."""
    body = await read_body(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    uri, names = None, _split(features)
    if content_type.split(";")[0].strip().lower() == "application/json":
        data = _json(body)
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            raise InputError('artifact JSON body: expected {"uri": "models:/...", ...}')
        uri, names = data["uri"], data.get("features") or names
        body = b""

    def run() -> dict[str, Any]:
        answer = attach(
            served.store,
            settings,
            model,
            version,
            data=body,
            fmt=format,
            content_type=content_type,
            uri=uri,
            features=names,
            trusted=_split(trusted),
            trust_pickle=trust_pickle,
        )
        served.forget(model, version)
        keep_shares_later(explainers_of(served), model, version)  # each window's drift impact
        return answer

    return await run_in_threadpool(run)


@router.get(
    "/v1/models/{model}/versions/{version}/artifact",
    response_model=Artifact,
    responses=errors(400, 401, 403, 404),
)
async def get_artifact(model: str, version: str, store: StoreDep) -> object:
    """The version's artifact: format, sha256, inputs and signature."""
    return await run_in_threadpool(artifact, store, model, version)


@router.post(
    "/v1/models/{model}/predict",
    response_model=Predicted,
    responses=errors(400, 401, 403, 404, 413, 500, 501, 503),
    openapi_extra=request_body(
        "rows or columns of features", {"application/json": [PredictRows, PredictColumns]}
    ),
)
async def predict(
    request: Request,
    model: str,
    served: ServedDep,
    version: Annotated[str | None, Query(description="default: the champion")] = None,
) -> object:
    """Score rows with the champion (or ``version``); each row becomes a prediction event."""
    return await predicted(request, served, model, version)


async def predicted(
    request: Request, served: ServedModels, model: str, version: str | None
) -> dict[str, Any]:
    """The answer of ``/v1/models/{model}/predict`` (as :class:`Predicted` orders it), for the
    route and for its fast path (``server/inference.py``)."""
    data = await read_json(request, served.settings.max_body_bytes)
    if not isinstance(data, dict) or ("rows" in data) == ("columns" in data):
        raise InputError('predict body: expected {"rows": [...]} or {"columns": {...}}')
    ids = data.get("prediction_ids") or _split(request.headers.get(IDS_HEADER))
    if "rows" in data:
        rows = data["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError("rows: expected a list of objects of feature: value")
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {n: [r.get(n) for r in rows] for n in names}
    else:
        columns = data["columns"]
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            raise InputError("columns: expected an object of feature: [values]")
    answer: Answer = await run_in_threadpool(
        lambda: score(served, model, columns, version=version, prediction_ids=ids)
    )
    scores = None
    if answer.scores is not None:
        scores = [dict(zip(answer.classes, map(float, row), strict=True)) for row in answer.scores]
    return {
        "model": model,
        "version": answer.version,
        "prediction_ids": answer.prediction_ids,
        "predictions": answer.predictions,
        "scores": scores,
        "latency_ms": answer.latency_ms,
    }


Top = Annotated[
    int,
    Query(
        ge=1, le=1000, description=f"contributions per row, largest first (default {DEFAULT_TOP})"
    ),
]


@router.post(
    "/v1/models/{model}/explain",
    response_model=Explained,
    responses=errors(400, 401, 403, 404, 413, 422, 500, 501),
    openapi_extra=request_body(
        f"rows or columns of features, as /predict takes them (at most {MAX_ROWS} rows)",
        {"application/json": [PredictRows, PredictColumns]},
    ),
)
async def explain(
    request: Request,
    model: str,
    served: ServedDep,
    version: Annotated[str | None, Query(description="default: the champion")] = None,
    top: Top = DEFAULT_TOP,
) -> object:
    """The served model's prediction for each row and its top SHAP contributions (feature,
    value, contribution; the expected value). Nothing is logged. 404 without an artifact,
    501 without SHAP (the ``explain`` extra)."""
    data = await read_json(request, served.settings.max_body_bytes)

    def run() -> dict[str, Any]:
        chosen = version or served.champion(model)
        explainer = explainers_of(served).get(model, chosen)
        columns = input_columns(data, explainer.features, explainer.numeric)
        scored, _ = predict_rows(served, model, chosen, columns)
        done = explainer.explain(columns)
        rows = done.rows(top)
        for i, row in enumerate(rows):
            row["prediction"] = scored.predictions[i]
            if scored.scores is not None:
                row["scores"] = dict(zip(scored.classes, map(float, scored.scores[i]), strict=True))
        return {
            "model": model,
            "version": chosen,
            "method": done.method,
            "explained": done.explained,
            "source": "model",
            "approximate": False,
            "rows": rows,
        }

    return await run_in_threadpool(run)


@router.get(
    "/v1/models/{model}/predictions/{id}/explanation",
    response_model=Explained,
    responses=errors(400, 401, 403, 404, 422, 500, 501),
)
async def explanation(model: str, id: str, served: ServedDep, top: Top = DEFAULT_TOP) -> object:
    """A logged prediction's explanation: its inputs from the lake, explained by its version's
    served artifact, or by a surrogate of the version (``approximate``, with its held-out
    ``fidelity``) when the version has none."""
    return await run_in_threadpool(explain_logged, served, model, id, top)


# ------------------------------------------------------------------ Open Inference Protocol v2
@router.get("/v2/health/live", response_model=Live)
async def v2_live() -> dict[str, bool]:
    """OIP server liveness (open, like /healthz)."""
    return {"live": True}


@router.get("/v2/health/ready", response_model=Ready)
async def v2_ready() -> dict[str, bool]:
    """OIP server readiness (open): the server takes requests; a model's own readiness is
    /v2/models/{model}/ready."""
    return {"ready": True}


@router.get("/v2", response_model=ServerMetadata, responses=errors(401, 403, oip=True))
async def v2_server() -> dict[str, Any]:
    """OIP server metadata."""
    return {
        "name": "watchkeeper",
        "version": __version__,
        "extensions": [oip_binary.EXTENSION],
    }


async def _version(served: ServedDep, model: str, version: str | None) -> str:
    if version:
        return version
    champion: str = await run_in_threadpool(served.champion, model)
    return champion


async def _metadata(served: ServedDep, model: str, version: str | None) -> dict[str, Any]:
    version = await _version(served, model, version)
    info = await run_in_threadpool(artifact, served.store, model, version)
    schema: Schema = (await run_in_threadpool(served.store.reference, model, version))[0]
    inputs = [
        {
            "name": f,
            "datatype": "FP64" if _numeric(schema, f) else "BYTES",
            "shape": [-1, 1],
        }
        for f in info["features"]
    ]
    versions = [v["version"] for v in await run_in_threadpool(served.store.versions, model)]
    return {
        "name": model,
        "versions": versions,
        "platform": PLATFORMS.get(info["format"], info["format"]),
        "inputs": inputs,
        "outputs": info["signature"]["outputs"],
        "parameters": {"version": version, "classes": info["signature"].get("classes", [])},
    }


def _numeric(schema: Schema, name: str) -> bool:
    column = schema.columns.get(name)
    return column is not None and column.type == ColumnType.NUMERIC


@router.get(
    "/v2/models/{model}",
    response_model=ModelMetadata,
    responses=errors(400, 401, 403, 404, oip=True),
)
async def v2_model(model: str, served: ServedDep) -> object:
    """OIP model metadata of the champion: one input per feature, the outputs."""
    return await _metadata(served, model, None)


@router.get(
    "/v2/models/{model}/versions/{version}",
    response_model=ModelMetadata,
    responses=errors(400, 401, 403, 404, oip=True),
)
async def v2_model_version(model: str, version: str, served: ServedDep) -> object:
    """OIP model metadata of a version."""
    return await _metadata(served, model, version)


async def _ready(served: ServedDep, model: str, version: str | None) -> dict[str, Any]:
    version = await _version(served, model, version)
    await run_in_threadpool(served.get, model, version)  # loads it: 404 or 500 if it cannot
    return {"name": model, "ready": True}


@router.get(
    "/v2/models/{model}/ready",
    response_model=Ready,
    responses=errors(400, 401, 403, 404, 500, oip=True),
)
async def v2_model_ready(model: str, served: ServedDep) -> object:
    """200 once the champion's model is loaded; 404 without an artifact, 500 if it does not
    load."""
    return await _ready(served, model, None)


@router.get(
    "/v2/models/{model}/versions/{version}/ready",
    response_model=Ready,
    responses=errors(400, 401, 403, 404, 500, oip=True),
)
async def v2_version_ready(model: str, version: str, served: ServedDep) -> object:
    """200 once the version's model is loaded."""
    return await _ready(served, model, version)


async def inferred(
    request: Request, served: ServedModels, model: str, version: str | None
) -> dict[str, Any] | Response:
    """The answer of ``/v2/models/{model}[/versions/{version}]/infer``: the response's JSON,
    or the binary extension's response; for the routes and their fast path."""
    header_length = request.headers.get(oip_binary.HEADER)
    limit = served.settings.max_body_bytes
    if header_length is None:
        body = await read_json(request, limit)
    else:  # the binary tensor data extension
        body = oip_binary.split_request(await read_body(request, limit), header_length)
    header_ids = _split(request.headers.get(IDS_HEADER))

    def run() -> dict[str, Any]:  # one trip to the thread pool, not three
        chosen = version or served.champion(model)
        features = served.meta.inputs(model, chosen)
        columns, ids, request_id, _ = oip.parse_request(body, features)
        answer = score(served, model, columns, version=chosen, prediction_ids=ids or header_ids)
        return oip.response(answer, request_id, body.get("outputs"))

    result = await run_in_threadpool(run)
    binary = oip_binary.binary_outputs(body)
    if not binary:
        return result
    content, length = oip_binary.join_response(result, binary)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(length)},
    )


INFER = {
    "response_model": InferResponse,
    "responses": errors(400, 401, 403, 404, 413, 415, 500, 501, 503, oip=True),
    "openapi_extra": {
        **request_body(
            "an OIP v2 inference request: JSON, or with the binary tensor data extension a "
            "JSON header of Inference-Header-Content-Length bytes and the raw tensors after "
            "it (a body with no Content-Type, as Triton's client sends, is read too)",
            {"application/json": InferRequest, "application/octet-stream": None},
        ),
        UNTYPED: True,
    },
}


@router.post("/v2/models/{model}/infer", **INFER)  # type: ignore[arg-type]
async def v2_infer(request: Request, model: str, served: ServedDep) -> object:
    """OIP inference with the champion; the rows become prediction events."""
    return await inferred(request, served, model, None)


@router.post("/v2/models/{model}/versions/{version}/infer", **INFER)  # type: ignore[arg-type]
async def v2_infer_version(request: Request, model: str, version: str, served: ServedDep) -> object:
    """OIP inference with a given version."""
    return await inferred(request, served, model, version)


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
