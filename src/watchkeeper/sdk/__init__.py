"""The watchkeeper SDK: log predictions and ground truth from a model service.

Standard library only, and nothing here waits for the network::

    from watchkeeper.sdk import Client

    client = Client("http://localhost:8700", token=None)
    client.register("churn", "train.parquet", target="churned", prediction="pred")  # once
    pid = client.log_prediction("churn", {"age": 41, "plan": "pro"}, "stay")
    client.log_actual("churn", pid, "left")  # when the truth is known

Events go to an in-memory buffer; a background thread batches, sends, retries with backoff
and, while the server is unreachable, keeps them in a spool directory on disk that survives
restarts. ``flush()`` waits for the server's acknowledgement; the client flushes at exit.
``client.monitor(model)`` times a predict function (decorator or ``with``);
``WatchkeeperMiddleware`` logs the requests of an ASGI (FastAPI, Starlette) model service.
The full guide is ``docs/sdk.md``.
"""

from ._client import Client, default_spool_dir
from ._deadletter import DeadLetter
from ._events import new_prediction_id
from ._monitor import Monitor, Observation
from ._request import RequestError, attach_artifact, register, request
from ._stats import ClientStats
from .middleware import WatchkeeperMiddleware

__all__ = [
    "Client",
    "ClientStats",
    "DeadLetter",
    "Monitor",
    "Observation",
    "RequestError",
    "WatchkeeperMiddleware",
    "attach_artifact",
    "default_spool_dir",
    "new_prediction_id",
    "register",
    "request",
]
