"""Direct requests to the service, waiting for its answer: ``request()`` for any route,
``register()`` for a model version with its reference (and its model artifact), and
``attach_artifact()`` for a version's model artifact. ``Client.register`` and the
``watchkeeper`` command use them; the log calls never do (they go through the sender)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ._http import NETWORK_ERRORS, Transport


class RequestError(Exception):
    """The server refused a direct request: its status, message and error type.

    ``error_type`` is the ``type`` of the server's JSON error body (e.g. ``ConflictError``),
    empty when the answer had none (``message`` is then the start of the answer's text).
    """

    def __init__(self, status: int, message: str, error_type: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.error_type = status, message, error_type


def request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    content: tuple[bytes, str] | None = None,
    timeout: float = 30.0,
    binary: bool = False,
) -> Any:
    """Send one request to the service at ``url`` and return its decoded JSON answer.

    ``path`` is the route with its query string (``"/v1/alerts?state=firing"``); ``body`` a
    JSON-serialisable value, or ``content`` raw bytes and their content type. Raises
    :class:`RequestError` when the server answers with a status of 300 or more, and
    ``ConnectionError`` (``"cannot reach the service at <url>: <reason>"``) when no answer
    comes back. ``binary``: return the answer's bytes, undecoded.
    """
    data = content[0] if content is not None else None
    if content is None and body is not None:
        data = json.dumps(body).encode()
    transport = Transport(url, token, timeout)
    try:
        resp = transport.request(method, path, data, None if content is None else content[1])
    except NETWORK_ERRORS as exc:
        raise ConnectionError(f"cannot reach the service at {url}: {exc}") from None
    finally:
        transport.close()
    if resp.status >= 300:
        error = resp.body.get("error") if isinstance(resp.body, dict) else None
        if isinstance(error, dict) and error.get("message") is not None:
            raise RequestError(resp.status, str(error["message"]), str(error.get("type") or ""))
        raise RequestError(resp.status, resp.text)
    return resp.data if binary else resp.body


def _names(value: str | list[str] | None, what: str) -> str | None:
    """One name or several, as the comma-separated query value: a string is one column."""
    if not value:
        return None
    names = [value] if isinstance(value, str) else list(value)
    for name in names:
        if not isinstance(name, str) or not name or "," in name:
            raise ValueError(f"{what}: {name!r} is not a column name")
    return ",".join(names)


def register(
    url: str,
    model: str,
    reference: Any,
    *,
    token: str | None = None,
    version: str = "v1",
    target: str | None = None,
    prediction: str | None = None,
    scores: str | list[str] | None = None,
    segments: str | list[str] | None = None,
    features: str | list[str] | None = None,
    ignore: str | list[str] | None = None,
    window_seconds: int | None = None,
    drift_reference: str | None = None,
    champion: bool = True,
    constraints: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    on_violation: str | None = None,
    card: Mapping[str, str] | None = None,
    artifact: str | os.PathLike[str] | None = None,
    artifact_format: str | None = None,
    artifact_inputs: list[str] | None = None,
    trusted_types: list[str] | None = None,
    trust_pickle: bool = False,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Register ``model`` (if new) and ``version`` with its training reference on the
    service at ``url``; return the server's answer (the inferred schema among it).

    With ``artifact`` (a model file or an MLflow URI) the version's model is attached too
    (:func:`attach_artifact`; ``artifact_format``, ``artifact_inputs``, ``trusted_types`` and
    ``trust_pickle`` go there), and the answer has its metadata under ``"artifact"``.

    ``reference`` is a ``.parquet``, ``.csv`` or ``.arrow`` file, or a pandas/polars
    DataFrame or an Arrow table, or a fitted ``watchkeeper.Reference`` (or the directory its
    ``save`` wrote): the version is then registered with the Reference's schema as fitted, and
    ``target``, ``prediction``, ``scores``, ``features`` and ``ignore``, when given, must agree
    with it. Raises ``ValueError`` for another kind of reference,
    ``FileNotFoundError`` for a missing file, and as :func:`request` does. ``constraints`` (a
    mapping, a JSON file, or ``"suggest"``: proposed from the reference) and ``on_violation``
    (``quarantine`` or ``count``) set validation rules; see ``watchkeeper.constraints``.
    ``features`` and ``ignore`` (a column name or a list of them) force columns to be features
    or leave them out of monitoring. The answer's ``roles`` list each column's role and why.
    ``card`` (``description``, ``owner``, ``intended_use``: text) is the version's model card
    metadata (``docs/model-card.md``).
    """
    _check_card(card)
    content = _reference_body(reference)
    query: dict[str, str] = {"champion": "true" if champion else "false"}
    for key, value in (
        ("target", target),
        ("prediction", prediction),
        ("drift_reference", drift_reference),
        ("window_seconds", None if window_seconds is None else str(int(window_seconds))),
        ("scores", _names(scores, "scores")),
        ("segments", _names(segments, "segments")),
        ("features", _names(features, "features")),
        ("ignore", _names(ignore, "ignore")),
        ("constraints", _constraints_text(constraints)),
        ("on_violation", on_violation),
        *((k, v) for k, v in (card or {}).items() if k in CARD_FIELDS),
    ):
        if value is not None:
            query[key] = value
    path = f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"
    answer: dict[str, Any] = request(
        url, "PUT", f"{path}?{urlencode(query)}", token=token, content=content, timeout=timeout
    )
    if artifact is not None:
        answer["artifact"] = attach_artifact(
            url,
            model,
            version,
            artifact,
            token=token,
            artifact_format=artifact_format,
            inputs=artifact_inputs,
            trusted_types=trusted_types,
            trust_pickle=trust_pickle,
            timeout=timeout,
        )
    return answer


CARD_FIELDS = ("description", "owner", "intended_use")


def _check_card(card: Mapping[str, str] | None) -> None:
    unknown = sorted(set(card or {}) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(f"card: unknown field(s) {unknown}: known are {list(CARD_FIELDS)}")


_ARTIFACT_TYPES = {
    ".onnx": "application/onnx",
    ".skops": "application/x-skops",
    ".pkl": "application/x-pickle",
    ".pickle": "application/x-pickle",
    ".joblib": "application/x-pickle",
}


def attach_artifact(
    url: str,
    model: str,
    version: str,
    artifact: str | os.PathLike[str],
    *,
    token: str | None = None,
    artifact_format: str | None = None,
    inputs: list[str] | None = None,
    trusted_types: list[str] | None = None,
    trust_pickle: bool = False,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Attach (or replace) the model artifact of ``version``: a ``.onnx``, ``.skops`` file
    (or a pickle/joblib file, refused unless ``trust_pickle``: it runs code when loaded), or
    an MLflow URI (``models:/name@alias``, ``models:/name/1``, ``runs:/<id>/model``).
    ``inputs`` names unnamed model inputs in order; ``trusted_types`` lists the skops types to
    trust. Returns the artifact's metadata; raises as :func:`request` does."""
    query: dict[str, str] = {}
    if inputs:
        query["features"] = ",".join(inputs)
    if trusted_types:
        query["trusted"] = ",".join(trusted_types)
    if trust_pickle:
        query["trust_pickle"] = "true"
    if artifact_format:
        query["format"] = artifact_format
    path = f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/artifact"
    path += f"?{urlencode(query)}" if query else ""
    if isinstance(artifact, str) and artifact.startswith(("models:/", "runs:/")):
        body: dict[str, Any] = {"uri": artifact}
        answer: dict[str, Any] = request(url, "PUT", path, body, token=token, timeout=timeout)
        return answer
    file = Path(artifact)
    if not file.is_file():
        raise FileNotFoundError(f"artifact {file}: no such file")
    kind = _ARTIFACT_TYPES.get(file.suffix.lower(), "application/octet-stream")
    answer = request(
        url, "PUT", path, token=token, content=(file.read_bytes(), kind), timeout=timeout
    )
    return answer


_REFERENCE_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".csv": "text/csv",
    ".arrow": "application/vnd.apache.arrow.stream",
    ".arrows": "application/vnd.apache.arrow.stream",
}


def _reference_body(reference: Any) -> tuple[bytes, str]:
    """A reference as an upload: a Parquet/CSV/Arrow file path, a directory written by
    ``Reference.save``, or a pandas/polars DataFrame, an Arrow table or a fitted ``Reference``
    (sent as Parquet, a Reference's schema in the metadata; pyarrow is imported only then)."""
    if isinstance(reference, str | os.PathLike):
        path = Path(reference)
        if path.is_dir() and (path / "reference.json").is_file():  # a saved Reference
            path = path / "data.parquet"  # its rows, with its schema in the metadata
        kind = _REFERENCE_TYPES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"reference {path}: expected a .parquet, .csv or .arrow file")
        if not path.is_file():
            raise FileNotFoundError(f"reference {path}: no such file")
        return path.read_bytes(), kind
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(reference, pa.Table):
        table = reference
    elif hasattr(reference, "to_arrow"):  # polars, or a fitted watchkeeper Reference
        table = reference.to_arrow()
    elif hasattr(reference, "to_parquet") and hasattr(reference, "columns"):  # pandas
        table = pa.Table.from_pandas(reference, preserve_index=False)
    else:
        raise ValueError(
            "reference must be a file path, a pandas or polars DataFrame or an Arrow table, "
            f"got {type(reference).__name__}"
        )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue(), _REFERENCE_TYPES[".parquet"]


def _constraints_text(constraints: Mapping[str, Any] | str | os.PathLike[str] | None) -> str | None:
    """The ``constraints`` query parameter: JSON text, or ``suggest``; a path is read."""
    if constraints is None or isinstance(constraints, Mapping):
        return None if constraints is None else json.dumps(constraints)
    if isinstance(constraints, str) and (
        constraints == "suggest" or constraints.lstrip()[:1] == "{"
    ):
        return constraints
    return Path(constraints).read_text(encoding="utf-8")
