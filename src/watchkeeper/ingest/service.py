"""The ingest service: register models, accept prediction batches durably, join late labels.

Flow of ``ingest``: back-pressure check → parse → validate per model version → rejected rows
to quarantine (with reasons) → accepted rows written to the durable log in one transaction
(ids seen already dropped: retries are idempotent) → the response. A background ``Processor``
later indexes the logged batches' prediction ids (for label joins and exact deduplication) and
moves them to the Parquet lake and into time-bucketed profiles.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.ingest.events import RESERVED, PayloadTooLarge, from_ipc, parse_batch, to_ipc
from watchkeeper.ingest.validate import as_text, validate
from watchkeeper.io import to_table
from watchkeeper.profiles import profile_reference
from watchkeeper.schema import Role, Schema, infer_schema
from watchkeeper.settings import Settings
from watchkeeper.store.state import DRIFT_REFERENCES, IndexRows, Store, check_name

SAMPLE_ROWS = 5000


class Overloaded(WatchkeeperError):
    """Too many events wait to be processed: the client should retry later."""

    http_status = 503
    retry_after = 5


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "errors": [
                {"index": r["index"], "prediction_id": r["prediction_id"], "reasons": r["reasons"]}
                for r in self.rejected
            ],
            "ignored_fields": self.ignored_fields,
        }


def segment_keys(table: pa.Table, segments: list[str]) -> list[str]:
    """One key per row, ``name=value|name=value`` in the model's segment order ('' if none)."""
    if not segments:
        return [""] * table.num_rows
    parts = []
    for name in segments:
        values = (
            pc.cast(table.column(name), pa.string()).to_pylist()
            if name in table.column_names
            else [None] * table.num_rows
        )
        parts.append([f"{name}={'' if v is None else v}" for v in values])
    return ["|".join(p) for p in zip(*parts, strict=True)]


def predictions(table: pa.Table, schema: Schema) -> list[str | None]:
    """Each event's prediction as text, for the label join: the reserved ``prediction`` field,
    or else the column the schema names as the prediction (e.g. ``pred``)."""
    out = pa.nulls(table.num_rows, pa.string())
    if "prediction" in table.column_names:
        out = as_text(table.column("prediction").combine_chunks())
    for col in schema.by_role(Role.PREDICTION):
        if col.name in table.column_names and col.name != "prediction":
            out = pc.coalesce(out, as_text(table.column(col.name).combine_chunks()))
            break
    values: list[str | None] = out.to_pylist()
    return values


def scores(table: pa.Table, schema: Schema, reference: Any = None) -> list[float | None]:
    """Each event's score (the positive class's probability), for ROC AUC once labels come:
    the first column the schema names as a score that the event has; else, for a binary
    target, the event's ``scores`` entry of the positive class (``score.<class>``, the class
    that sorts last, as in the performance aggregate)."""
    names = [col.name for col in schema.by_role(Role.SCORE)]
    classes = binary_classes(schema, reference) if reference is not None else None
    if classes is not None:
        names.append(f"score.{classes[-1]}")
    present = [
        pc.cast(table.column(name), pa.float64(), safe=False)
        for name in names
        if name in table.column_names
    ]
    if not present:
        return [None] * table.num_rows
    out: list[float | None] = (
        present[0] if len(present) == 1 else pc.coalesce(*present)
    ).to_pylist()  # per event, the first of them it has
    return out


def index_batch(store: Store, batch_id: int, model: str) -> bytes | None:
    """Index a logged batch of ``model`` (``Store.index_batch``), then join the labels that
    came before its predictions; return the batch's payload (None when processed already)."""
    payload = store.index_batch(batch_id, index_rows(store))
    if payload is not None:
        rematch_labels(store, model, payload)
    return payload


def rematch_labels(store: Store, model: str, payload: bytes) -> int:
    """Join the model's unmatched labels of a logged payload's predictions (indexed now)."""
    from watchkeeper.store.labels import rematch

    if not store.counters(model).get("actuals_unmatched_total"):
        return 0  # the common case, and the payload is not decoded for nothing
    ids = from_ipc(payload).column("prediction_id").to_pylist()
    info = store.model(model)
    if info.champion is None:
        return 0
    schema, reference = store.reference(model, info.champion)
    return rematch(
        store,
        model,
        ids,
        horizon_seconds=info.label_horizon_seconds,
        granularities=sorted({info.window_seconds, 86400}),
        aggregate=performance_aggregator(_task_of(schema), binary_classes(schema, reference)),
    )


def index_rows(store: Store) -> Callable[[str, str, bytes], IndexRows]:
    """``describe`` for ``Store.index_batch``: a logged payload → its prediction-index rows
    (id, event time, the bucket of the model's window, segment key, prediction, score)."""

    def describe(model: str, version: str, payload: bytes) -> IndexRows:
        info = store.model(model)
        table = from_ipc(payload)
        schema, reference = store.reference(model, version)
        event_time = table.column("event_time").to_numpy()
        window = info.window_seconds
        buckets = (np.floor(event_time / window) * window).astype(np.int64).tolist()
        ids = table.column("prediction_id").to_pylist()
        rows = list(
            zip(
                ids,
                event_time.tolist(),
                buckets,
                segment_keys(table, info.segments),
                predictions(table, schema),
                scores(table, schema, reference),
                strict=True,
            )
        )

        def without(drop: set[str]) -> bytes:
            mask = pc.invert(pc.is_in(table.column("prediction_id"), pa.array(sorted(drop))))
            return to_ipc(table.filter(mask))

        return IndexRows(ids, rows, without)

    return describe


class IngestService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # ---------------------------------------------------------------- registry
    def register(
        self,
        model: str,
        reference: object,
        *,
        version: str = "v1",
        target: str | None = None,
        prediction: str | None = None,
        scores: list[str] | None = None,
        segments: list[str] | None = None,
        schema: Schema | None = None,
        window_seconds: int | None = None,
        label_horizon_days: float | None = None,
        retention_days: float | None = None,
        champion: bool = True,
        drift_reference: str | None = None,
    ) -> dict[str, Any]:
        """Register a model (if new) and a version with its training reference."""
        check_name("model", model)
        check_name("version", version)
        if drift_reference is not None and drift_reference not in DRIFT_REFERENCES:
            raise InputError(
                f"drift_reference {drift_reference!r}: use one of {', '.join(DRIFT_REFERENCES)}"
            )
        table = to_table(reference, name="reference")
        if schema is None:
            schema = infer_schema(
                table, target=target, prediction=prediction, scores=scores, segments=segments or ()
            )
        for name in segments or ():
            if name not in schema.columns:
                raise InputError(f"segment column {name!r} is not in the reference")
        clash = [
            c.name
            for c in schema.columns.values()
            if c.name in RESERVED and c.role in (Role.FEATURE, Role.SEGMENT)
        ]
        if clash:
            raise InputError(
                f"reference column(s) {clash} have reserved event field names; rename them"
            )
        profile = profile_reference(table, schema)
        sample = table.slice(0, 0)
        if table.num_rows:
            rng = np.random.default_rng(0)
            take = np.sort(
                rng.choice(table.num_rows, min(SAMPLE_ROWS, table.num_rows), replace=False)
            )
            sample = table.take(pa.array(take))
        buf = io.BytesIO()
        pq.write_table(sample, buf)
        existing = {m.name for m in self.store.models()}
        if model not in existing:
            s = self.settings
            self.store.create_model(
                model,
                window_seconds=window_seconds or s.window_seconds,
                label_horizon_seconds=(label_horizon_days or s.label_horizon_days) * 86400,
                retention_days=retention_days or s.retention_days,
                segments=list(segments or schema_segments(schema)),
                drift_reference=drift_reference or "training",
            )
        self.store.add_version(
            model,
            version,
            schema=schema.to_dict(),
            reference_profile=profile.to_bytes(),
            reference_rows=table.num_rows,
            reference_sample=buf.getvalue(),
            champion=champion,
        )
        return {
            "model": model,
            "version": version,
            "reference_rows": table.num_rows,
            "schema": schema.to_dict(),
        }

    def schema(self, model: str, version: str) -> Schema:
        schema: Schema = self.store.reference(model, version)[0]
        return schema

    # ---------------------------------------------------------------- ingest
    def ingest(self, model: str, body: bytes, content_type: str | None) -> IngestResult:
        info = self.store.model(model)
        pending = self.store.pending_events()
        if pending > self.settings.max_pending_events:
            raise Overloaded(
                f"{pending} events wait to be processed (the limit is "
                f"{self.settings.max_pending_events}); retry later"
            )
        table = parse_batch(body, content_type)
        if table.num_rows > self.settings.max_batch_events:
            raise PayloadTooLarge(
                f"batch of {table.num_rows} events; the limit is {self.settings.max_batch_events}"
            )
        if info.champion is None:
            raise InputError(f"model {model!r} has no version yet: register one with a reference")
        versions = {v["version"] for v in self.store.versions(model)}
        if "version" in table.column_names:
            raw = table.column("version").combine_chunks()
            given = pc.fill_null(as_text(raw), info.champion)
        else:
            given = pa.array([info.champion] * table.num_rows, pa.string())
        table = table.drop_columns([c for c in ("version",) if c in table.column_names])
        table = table.append_column("version", given)
        result = IngestResult(0, 0)
        for version in pc.unique(given).to_pylist():
            mask = pc.equal(table.column("version"), version)
            part = table.filter(mask)
            positions = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
            if version not in versions:
                for local, row in enumerate(part.to_pylist()):
                    result.rejected.append(
                        {
                            "index": int(positions[local]),
                            "prediction_id": row.get("prediction_id"),
                            "event": {
                                k: (
                                    v
                                    if isinstance(v, str | int | float | bool) or v is None
                                    else str(v)
                                )
                                for k, v in row.items()
                            },
                            "reasons": [
                                {"field": "version", "problem": f"unknown version {version!r}"}
                            ],
                        }
                    )
                continue
            checked = validate(part, self.schema(model, version))
            for r in checked.rejected:
                r["index"] = int(positions[r["index"]])
            result.rejected.extend(checked.rejected)
            result.ignored_fields = sorted(set(result.ignored_fields) | set(checked.ignored_fields))
            stored, dupes = self._store(model, version, checked.accepted)
            result.accepted += stored
            result.duplicates += len(dupes)
        if result.rejected:
            self.store.quarantine_add(model, result.rejected)
        result.rejected.sort(key=lambda r: r["index"])
        return result

    def _store(self, model: str, version: str, table: pa.Table) -> tuple[int, set[str]]:
        if table.num_rows == 0:
            return 0, set()
        table = table.drop_columns(["version"]) if "version" in table.column_names else table
        ids = table.column("prediction_id")

        def without(kept: set[str]) -> bytes:
            return to_ipc(table.filter(pc.is_in(ids, pa.array(sorted(kept), pa.string()))))

        return self.store.accept_batch(model, version, to_ipc(table), ids.to_pylist(), without)

    def index_pending(self, model: str) -> int:
        """Index the model's logged batches the processor has not reached yet (a label join
        needs its predictions in the index); return how many were indexed."""
        batches = self.store.unindexed_batches(model)
        for batch_id in batches:
            index_batch(self.store, batch_id, model)
        return len(batches)

    def actuals(self, model: str, body: bytes) -> dict[str, Any]:
        """Join ground-truth labels to their predictions (see ``store.labels``)."""
        from watchkeeper.store.labels import accept_actuals

        info = self.store.model(model)
        items, rejected = check_actuals(parse_actuals(body))
        if info.champion is None:
            raise InputError(f"model {model!r} has no version yet")
        self.index_pending(model)
        schema, reference = self.store.reference(model, info.champion)
        task = _task_of(schema)
        result: dict[str, Any] = accept_actuals(
            self.store,
            model,
            items,
            horizon_seconds=info.label_horizon_seconds,
            granularities=sorted({info.window_seconds, 86400}),
            aggregate=performance_aggregator(task, binary_classes(schema, reference)),
        )
        if rejected:
            self.store.bump(model, {"actuals_rejected_total": len(rejected)})
        result["rejected"] = len(rejected)
        result["errors"] = rejected
        return result

    def cloudevent(
        self, headers: dict[str, str], body: bytes, model: str | None, version: str | None
    ) -> dict[str, Any]:
        """Accept one CloudEvent (a request or a response half of a prediction)."""
        import json

        from watchkeeper.ingest.cloudevents import (
            accept_half,
            finish_pair,
            pair_to_events,
            read_event,
        )

        event = read_event(headers, body)
        attrs = event["attrs"]
        model = model or attrs.get("inferenceservicename") or attrs.get("modelid")
        if not model:
            raise InputError("no model: set ?model= or the inferenceservicename/modelid attribute")
        info = self.store.model(str(model))
        version = version or attrs.get("modelversion")
        pair = accept_half(self.store, info.name, version, event)
        if pair is None:
            return {"status": "waiting", "id": attrs["join_id"], "kind": attrs["kind"]}
        use = pair["version"] or info.champion
        if use is None:
            raise InputError(f"model {info.name!r} has no version yet")
        events = pair_to_events(
            pair["join_id"], pair["request"], pair["response"], self.schema(info.name, use)
        )
        for e in events:
            e["version"] = use
        result = self.ingest(info.name, json.dumps({"events": events}).encode(), "application/json")
        finish_pair(self.store, info.name, pair["join_id"])
        return {"status": "joined", "id": pair["join_id"], **result.to_dict()}

    def status(self, model: str) -> dict[str, Any]:
        info = self.store.model(model)
        counters = self.store.counters(model)
        last = self.store.last_event_time(model)
        return {
            "model": info.name,
            "champion": info.champion,
            "versions": self.store.versions(model),
            "segments": info.segments,
            "window_seconds": info.window_seconds,
            "drift_reference": info.drift_reference,
            "events_total": counters.get("events_total", 0),
            "quarantined_total": counters.get("quarantined_total", 0),
            "duplicates_total": counters.get("duplicates_total", 0),
            "actuals_total": counters.get("actuals_total", 0),
            "actuals_unmatched_total": counters.get("actuals_unmatched_total", 0),
            "actuals_late_total": counters.get("actuals_late_total", 0),
            "events_pending": self.store.pending_events(),
            "last_event_time": last,
            "created_at": info.created_at,
            "now": time.time(),
        }


def schema_segments(schema: Schema) -> list[str]:
    return [c.name for c in schema.by_role(Role.SEGMENT)]


def _task_of(schema: Schema) -> str:
    targets = schema.by_role(Role.TARGET)
    if targets and targets[0].type.value == "numeric":
        return "regression"
    return "classification"


def performance_aggregator(task: str, classes: list[str] | None = None) -> Any:
    """Merge (prediction, label, score) triples into a stored performance aggregate (a dict).

    Classification keeps the labels' aggregate and, for a binary target whose two classes the
    reference names (``classes``), a second one over the labelled predictions that carry a
    score: the ROC AUC of the window comes from it. Predictions without a score still count
    in accuracy, F1 and the rest."""
    from watchkeeper.errors import ProfileMismatchError
    from watchkeeper.stats.performance import ClassificationAggregate, RegressionAggregate

    def merge(
        old: dict[str, Any] | None, items: list[tuple[str | None, str, float | None]]
    ) -> dict[str, Any]:
        preds = [item[0] for item in items]
        labels = [item[1] for item in items]
        agg: Any
        if task == "regression":
            y = np.array([_num(v) for v in labels], dtype=float)
            p = np.array([_num(v) for v in preds], dtype=float)
            agg = RegressionAggregate.from_arrays(y, p)
            if old is not None:
                agg = RegressionAggregate.from_dict(old["aggregate"]).merge(agg)
            return {"task": task, "aggregate": agg.to_dict()}
        y_true = np.array(labels, dtype=object)
        y_pred = np.array([None if v is None else str(v) for v in preds], dtype=object)
        agg = ClassificationAggregate.from_arrays(y_true, y_pred)
        if old is not None:
            agg = ClassificationAggregate.from_dict(old["aggregate"]).merge(agg)
        out: dict[str, Any] = {"task": task, "aggregate": agg.to_dict()}
        scored = None if old is None else old.get("scored")
        if classes is not None and len(classes) == 2:
            keep = [
                i
                for i, (pred, label, score) in enumerate(items)
                if score is not None
                and np.isfinite(score)
                and 0.0 <= score <= 1.0
                and label in classes
                and pred in classes
            ]
            if keep:
                part = ClassificationAggregate.from_arrays(
                    y_true[keep],
                    y_pred[keep],
                    np.array([items[i][2] for i in keep], dtype=float),
                    classes=np.array(classes, dtype=object),
                )
                try:
                    scored = (
                        part
                        if scored is None
                        else ClassificationAggregate.from_dict(scored).merge(part)
                    ).to_dict()
                except ProfileMismatchError:  # e.g. an old aggregate of other classes
                    scored = part.to_dict()
        if scored is not None:
            out["scored"] = scored
        return out

    return merge


def binary_classes(schema: Schema, reference: Any) -> list[str] | None:
    """The two classes of a binary target, from the reference profile (None otherwise)."""
    targets = schema.by_role(Role.TARGET)
    if not targets:
        return None
    column = reference.columns.get(targets[0].name)
    categories = getattr(column, "categories", None)
    if categories is None or len(categories) != 2:
        return None
    from watchkeeper.stats.labels import sort_classes

    return [str(c) for c in sort_classes([str(c) for c in categories])]


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def parse_actuals(body: bytes) -> list[dict[str, Any]]:
    """``{"actuals": [{"prediction_id", "label", "timestamp"?}]}`` or a bare list."""
    import json

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("actuals")
    if not isinstance(data, list):
        raise InputError('expected {"actuals": [{"prediction_id": ..., "label": ...}, ...]}')
    return data


def check_actuals(data: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid actuals, rejected ones with a reason each): one bad label rejects only itself."""
    good, bad = [], []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            bad.append({"index": i, "reasons": [{"field": "", "problem": "expected an object"}]})
            continue
        missing = [k for k in ("prediction_id", "label") if item.get(k) in (None, "")]
        nested = [k for k in ("prediction_id", "label") if isinstance(item.get(k), dict | list)]
        nul = [k for k in ("prediction_id", "label") if "\x00" in str(item.get(k))]
        if missing or nested or nul:
            reasons = [{"field": k, "problem": "missing"} for k in missing]
            reasons += [{"field": k, "problem": "expected a single value"} for k in nested]
            reasons += [{"field": k, "problem": "contains a NUL character (U+0000)"} for k in nul]
            bad.append({"index": i, "prediction_id": item.get("prediction_id"), "reasons": reasons})
            continue
        good.append(item)
    return good, bad
