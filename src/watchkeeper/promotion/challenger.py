"""Retrain → challenger: the model a retraining command wrote becomes a version in shadow.

The retraining job (``alerts/retrain.py``) exports the alert's labelled window and runs the
command with ``{output}``; when the command wrote a model file there, :func:`from_job`
registers it as a new version of the model — named ``retrain-<job id>``, with the job
version's schema and the exported window as its reference (the data it was trained on) —
attaches the file as its artifact (``serving/artifacts.py``: checked against the schema; an
ONNX or skops file, a pickle is refused) and makes the version a shadow challenger. The
verdict then decides, on live traffic, whether it replaces the champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.errors import InputError
from watchkeeper.schema import Role, Schema
from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.settings import Settings
    from watchkeeper.store.state import Store

ZIP_MAGIC = b"PK\x03\x04"  # a skops file is a zip archive; anything else is read as ONNX
EVENT_FIELDS = {Role.PREDICTION: "prediction", Role.TARGET: "label"}  # the export's names


def from_job(
    store: Store,
    settings: Settings,
    job: Mapping[str, Any],
    dataset: Path | None,
    output: Path,
) -> str:
    """Register, attach and shadow the model ``output`` of retraining ``job``; returns a
    line for the job's log."""
    from watchkeeper.ingest.registry import register
    from watchkeeper.serving.artifacts import attach

    if dataset is None or not dataset.is_file():
        raise InputError("the job exported no labelled window to use as the reference")
    model, version = job["model"], f"retrain-{job['id']}"
    schema: Schema = store.reference(model, job["version"])[0]
    reference = _reference(pq.read_table(dataset), schema)
    register(store, settings, model, reference, version=version, schema=schema, champion=False)
    data = output.read_bytes()
    fmt = "skops" if data[:4] == ZIP_MAGIC else "onnx"
    attach(store, settings, model, version, data=data, fmt=fmt)
    states.challenge(
        store, model, version, mode="shadow", detail={"by": "retrain", "job_id": job["id"]}
    )
    return (
        f"registered {output.name} ({fmt}) as version {version} of {model!r} with "
        f"{reference.num_rows} reference rows, in shadow"
    )


def _reference(table: pa.Table, schema: Schema) -> pa.Table:
    """The exported window in the schema's column names (the export names the prediction
    ``prediction`` and the label ``label``)."""
    columns = {}
    for name, column in schema.columns.items():
        source = name if name in table.column_names else EVENT_FIELDS.get(column.role)
        if source is not None and source in table.column_names:
            columns[name] = table.column(source)
    return pa.table(columns)
