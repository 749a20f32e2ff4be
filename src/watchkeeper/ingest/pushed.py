"""Window profiles pushed whole: a batch job (a nightly scoring run on Spark) profiles its rows
where they are (``watchkeeper.spark.profile``) and sends the profile, not the rows.

The profile must be built on the version's frozen spec (the bins and categories its reference
froze) and schema: anything else is refused (``ProfileMismatchError``, a 400 naming the
column). Accepted, it is merged into the stored profile of the window that holds ``window``
(and of its day), in one transaction, exactly as the processor merges a logged batch's
profile, and the window is marked for evaluation: its drift is then evaluated from it as
from logged events. A pushed profile has rows but no latencies, errors or labels: the window's
event count includes its rows, its error rate and latency quantiles only the logged events'.
Each push adds its rows: a push is not idempotent, send each window's profile once.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from watchkeeper.errors import InputError, ProfileMismatchError
from watchkeeper.ingest.buckets import merge_bucket
from watchkeeper.profiles import DatasetProfile
from watchkeeper.stats.operations import LATENCY_BOUNDS, Operations
from watchkeeper.store.state import Store

DAY = 86400
CONTENT_TYPE = "application/vnd.watchkeeper.profile"


def check_profile(profile: DatasetProfile, reference: DatasetProfile) -> None:
    """Refuse a profile not built on the reference's frozen spec, naming the first column
    whose bins, categories or type differ."""
    ref_spec, spec = reference.spec, profile.spec
    if spec.kll_k != ref_spec.kll_k:
        raise ProfileMismatchError(
            f"profile: sketch size kll_k={spec.kll_k}, the version's is {ref_spec.kll_k}: "
            "profile on the version's spec (its reference profile's .spec)"
        )
    unknown = sorted(set(spec.columns) - set(ref_spec.columns))
    if unknown:
        raise ProfileMismatchError(f"profile: columns not in the version's spec: {unknown}")
    for name, ref_col in ref_spec.columns.items():
        col = spec.columns.get(name)
        if col is None:
            raise ProfileMismatchError(
                f"profile: column {name!r} of the version's spec is not in the profile's spec"
            )
        if col != ref_col:
            what = "type" if col.type != ref_col.type else "bins" if col.edges else "categories"
            raise ProfileMismatchError(
                f"profile: column {name!r} has other {what} than the version's frozen spec: "
                "profile on the version's spec (its reference profile's .spec)"
            )
    extra = sorted(set(profile.columns) - set(spec.columns))
    if extra:
        raise ProfileMismatchError(f"profile: column profiles outside its spec: {extra}")


def _operations(rows: int) -> Operations:
    """The operational aggregate of rows logged without status or latency."""
    return {
        "count": rows,
        "errors": 0,
        "latency_counts": [0] * (len(LATENCY_BOUNDS) + 1),
        "latency_sum": 0.0,
        "latency_observed": 0,
    }


def _version(store: Store, model: str, version: str | None) -> str:
    chosen = version or store.model(model).champion
    if chosen is None:
        raise InputError(f"model {model!r} has no version yet: register one with a reference")
    return chosen


def reference_profile(store: Store, model: str, version: str | None = None) -> bytes:
    """The reference profile of ``version`` (the champion when None), serialised: its
    ``spec`` and ``schema`` are those a pushed profile must be built on."""
    _, reference = store.reference(model, _version(store, model, version))
    return reference.to_bytes()  # type: ignore[no-any-return]


def accept_profile(
    store: Store, model: str, blob: bytes, window: float, version: str | None = None
) -> dict[str, Any]:
    """Merge the serialised profile ``blob`` into the window of ``model`` (``version``: the
    champion when None) that holds the time ``window`` (Unix seconds); return what was
    merged: the version, the window's start and seconds, the rows and the window's total."""
    if not math.isfinite(window):
        raise InputError(f"window: a time in Unix seconds, got {window!r}")
    info = store.model(model)
    version = _version(store, model, version)
    try:
        profile = DatasetProfile.from_bytes(blob)
    except InputError:
        raise
    except Exception as exc:  # a corrupt body: zlib, JSON or a missing key
        raise InputError(f"profile: not a readable watchkeeper profile ({exc})") from None
    _, reference = store.reference(model, version)  # NotFoundError: no such version
    check_profile(profile, reference)
    size = info.window_seconds
    start = int(math.floor(window / size) * size)
    keys = [(size, start)]
    if size != DAY:  # the day's profile: the merge of its windows, or of what the day got
        keys.append((DAY, int(math.floor(window / DAY) * DAY)))
    segment = "*" if info.segments else ""
    ops = _operations(profile.rows)

    def body(conn: sa.Connection) -> int:
        total = 0
        for granularity, bucket in keys:
            key: dict[str, Any] = {
                "model": model,
                "version": version,
                "segment": segment,
                "granularity": granularity,
                "bucket": bucket,
            }
            prof = merge_bucket(store, conn, key, profile, ops)
            if granularity == size:
                total = prof.rows
        return total

    total = store.write(body)
    return {
        "model": model,
        "version": version,
        "window_start": start,
        "window_seconds": size,
        "rows": profile.rows,
        "window_rows": total,
    }
