"""The inference routes' fast path: ``POST /v1/models/{model}/predict`` and ``POST
/v2/models/{model}[/versions/{version}]/infer`` answered without FastAPI's machinery.

For a one-row request that machinery cost more than the model (issue 11): the routes were
found by trying some 90 path patterns in turn, FastAPI solved their dependencies (the body's
content type, the NUL check, the app's state) and validated the answer against its response
model before serialising it. These handlers are answered by
:class:`~watchkeeper.server.fastroute.FastRoutes`, which stands first in the router and makes
the documented routes' checks (content type, NULs); each handler then does what its
documented route does:

1. the body and the answer: :func:`~watchkeeper.server.serving_api.predicted` and
   :func:`~watchkeeper.server.serving_api.inferred` (the size limit, JSON, scoring in the
   thread pool);
2. the answer serialised by orjson in the response model's field order: the bytes pydantic
   writes for it (an answer orjson cannot write goes through the response model).

The documented routes stay for the OpenAPI document (and answer when the fast path is off:
``inference_fast_path = false``); the tests compare both answers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from watchkeeper.server.fastroute import Handler, dumped
from watchkeeper.server.schemas.serving import InferResponse, Predicted
from watchkeeper.server.serving_api import inferred, predicted

SCALARS = frozenset({str, float, int, bool, type(None)})  # Predicted.predictions' types


async def predict(request: Request, params: dict[str, Any]) -> Response:
    """``POST /v1/models/{model}/predict``: the predictions, in :class:`Predicted`."""
    version = request.query_params.get("version")
    content = await predicted(request, request.app.state.served, params["model"], version)
    plain = all(type(p) in SCALARS for p in content["predictions"])
    return Response(dumped(content, Predicted, plain=plain), media_type="application/json")


async def infer(request: Request, params: dict[str, Any]) -> Response:
    """``POST /v2/models/{model}[/versions/{version}]/infer``: the OIP answer (JSON, or the
    binary extension's)."""
    served = request.app.state.served
    answer = await inferred(request, served, params["model"], params.get("version"))
    if isinstance(answer, Response):  # the binary extension's
        return answer
    body = dumped(_in_model_order(answer), InferResponse, plain=True)
    return Response(body, media_type="application/json")


HANDLERS: dict[str, Handler] = {"predict": predict, "v2_infer": infer, "v2_infer_version": infer}


def _in_model_order(result: dict[str, Any]) -> dict[str, Any]:
    """An inference response in :class:`InferResponse`'s order, ``id`` null when absent."""
    ordered = {
        "model_name": result["model_name"],
        "model_version": result["model_version"],
        "id": result.get("id"),
        "parameters": result["parameters"],
        "outputs": result["outputs"],
    }
    return ordered | result
