"""Attaching a model artifact to a registered version.

The bytes go to ``<data_dir>/artifacts/<model>/<version>/<sha256>.<format>`` (an MLflow model
stays in its store: only its URI is kept); the format, sha256, input features and signature go
to the state database (``wk_artifacts``). Before anything is stored the artifact is loaded
once: a file that does not load, a skops file with types nobody trusted, a pickle not trusted
explicitly, or a model that takes an input the version's schema does not have is refused with
a 4xx naming the problem.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.schema import Role, Schema
from watchkeeper.serving.loaders import FORMATS, Loaded, UntrustedArtifact, load
from watchkeeper.settings import Settings
from watchkeeper.store.artifacts import get_artifact, put_artifact
from watchkeeper.store.state import NotFoundError, Store

CONTENT_TYPES = {
    "application/onnx": "onnx",
    "application/x-onnx": "onnx",
    "application/x-skops": "skops",
    "application/x-pickle": "pickle",
    "application/python-pickle": "pickle",
}
MLFLOW_SCHEMES = ("models:/", "runs:/")
PICKLE_MAGIC = b"\x80"  # protocol 2 and later; joblib's uncompressed files start so too


def artifacts_dir(settings: Settings) -> Path:
    return settings.data_dir / "artifacts"


def format_of(fmt: str | None, content_type: str | None, data: bytes) -> str:
    """The artifact's format: as named, else from the content type. Bytes that are a pickle
    are a pickle, whatever they are called."""
    kind = (content_type or "").split(";")[0].strip().lower()
    found = fmt or CONTENT_TYPES.get(kind)
    if data[:1] == PICKLE_MAGIC or (fmt or "").lower() in ("joblib", "pkl"):
        return "pickle"
    if found is None:
        raise InputError(
            f"artifact format: name it with format= (one of {', '.join(FORMATS)}) or a content "
            f"type ({', '.join(sorted(CONTENT_TYPES))}); got content type {kind!r}"
        )
    if found not in FORMATS:
        raise InputError(f"artifact format {found!r}: use one of {', '.join(FORMATS)}")
    return found


def schema_features(schema: Schema) -> list[str]:
    return [c.name for c in schema.by_role(Role.FEATURE)]


def attach(
    store: Store,
    settings: Settings,
    model: str,
    version: str,
    *,
    data: bytes | None = None,
    fmt: str | None = None,
    content_type: str | None = None,
    uri: str | None = None,
    features: list[str] | None = None,
    trusted: list[str] | None = None,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Check, store and record the version's artifact (bytes, or an MLflow ``uri``); returns
    its metadata (:func:`describe`)."""
    schema: Schema = store.reference(model, version)[0]  # NotFoundError naming what is missing
    trusted = sorted(set(trusted or []) | ({"pickle"} if trust_pickle else set()))
    given = features or schema_features(schema)
    if uri is not None:
        if not uri.startswith(MLFLOW_SCHEMES):
            raise InputError(f"uri {uri!r}: use models:/name@alias, models:/name/1 or runs:/...")
        loaded = load("mlflow", uri=uri, features=given, tracking_uri=settings.mlflow_tracking_uri)
        _check_inputs(loaded, schema, version)
        row: dict[str, Any] = {"format": "mlflow", "sha256": _sha(uri.encode()), "size": 0}
        row |= {"uri": uri, "path": None}
    else:
        if not data:
            raise InputError("artifact: the body is empty (send the model file, or a JSON uri)")
        kind = format_of(fmt, content_type, data)
        if kind == "mlflow":
            raise InputError('an MLflow model is attached by its URI: {"uri": "models:/..."}')
        if kind == "pickle" and "pickle" not in trusted:
            raise UntrustedArtifact(
                "pickle/joblib artifacts run code when loaded: refused unless trusted "
                "explicitly (trust_pickle=true, --trust-pickle); prefer ONNX or skops"
            )
        sha = _sha(data)
        relative = Path(model) / version / f"{sha}.{kind}"
        path = artifacts_dir(settings) / relative
        _write(path, data)
        try:
            loaded = load(kind, path=path, features=given, trusted=trusted)
            _check_inputs(loaded, schema, version)
        except BaseException:
            if not _in_use(store, model, version, sha):
                path.unlink(missing_ok=True)
            raise
        row = {"format": kind, "sha256": sha, "size": len(data), "uri": None}
        row["path"] = relative.as_posix()
    row |= {"features": loaded.features, "trusted": trusted}
    row["signature"] = {"inputs": loaded.inputs, "outputs": loaded.outputs}
    row["signature"]["classes"] = loaded.classes
    stored = put_artifact(store, model, version, row)
    _remove_others(artifacts_dir(settings) / model / version, row.get("path"))
    return describe(stored)


def artifact(store: Store, model: str, version: str) -> dict[str, Any]:
    """The version's artifact metadata, or :class:`NotFoundError`."""
    store.version(model, version)
    row = get_artifact(store, model, version)
    if row is None:
        raise NotFoundError(
            f"model {model!r} version {version!r} has no artifact: attach one with "
            f"PUT /v1/models/{model}/versions/{version}/artifact"
        )
    return describe(row)


def describe(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "version", "format", "sha256", "size", "uri", "features", "trusted")
    return {
        **{k: row.get(k) for k in keys},
        "signature": row["signature"],
        "attached_at": row["attached_at"],
    }


def _check_inputs(loaded: Loaded, schema: Schema, version: str) -> None:
    if not loaded.features:
        raise InputError(
            "the model's inputs have no names and the version's schema has no features: "
            "name them in order with features=..."
        )
    missing = [n for n in loaded.features if n not in schema.columns]
    if missing:
        raise InputError(
            f"the model takes input(s) {missing} that version {version!r}'s schema does not "
            f"have (its columns: {sorted(schema.columns)})"
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _in_use(store: Store, model: str, version: str, sha: str) -> bool:
    row = get_artifact(store, model, version)
    return row is not None and row["sha256"] == sha


def _remove_others(directory: Path, keep: str | None) -> None:
    """Files of the version's earlier artifacts (a model loaded from one keeps it open)."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if keep is None or not keep.endswith(path.name):
            path.unlink(missing_ok=True)
