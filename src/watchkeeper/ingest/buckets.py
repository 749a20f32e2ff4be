"""Time-bucketed profiles: a batch's events → one profile and one operational aggregate per
(segment, granularity, bucket), merged into the stored ones in the transaction that marks the
batches processed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from watchkeeper.ingest.index import segment_keys
from watchkeeper.profiles import DatasetProfile, ProfileSpec, profile_table
from watchkeeper.schema import Schema
from watchkeeper.stats.operations import Operations, merge_operations, operations
from watchkeeper.store.state import ModelInfo, Store

DAY = 86400
# (segment, granularity, bucket) → the profile and operational aggregate of its events
Buckets = dict[tuple[str, int, int], tuple[DatasetProfile, Operations]]


def profile_buckets(table: pa.Table, schema: Schema, spec: ProfileSpec, info: ModelInfo) -> Buckets:
    """Profile each (segment, window) once; a day's profile is the merge of its windows'
    when windows tile the day, else it is profiled on its own. ``*`` is every segment."""
    window = info.window_seconds
    times = table.column("event_time").to_numpy()
    keys = np.array(segment_keys(table, info.segments), dtype=object)
    segments = set(keys.tolist()) | {"*"} if info.segments else {""}
    partial: Buckets = {}
    granularities = [window] if DAY % window == 0 else sorted({window, DAY})
    for granularity in granularities:
        coarse = (np.floor(times / granularity) * granularity).astype(np.int64)
        for seg in segments:
            seg_mask = np.ones(len(keys), bool) if seg in ("*", "") else keys == seg
            for b in np.unique(coarse[seg_mask]):
                part = table.filter(pa.array(seg_mask & (coarse == b)))
                prof = profile_table(part, schema, spec, threads=1)
                partial[(seg, granularity, int(b))] = (prof, operations(part))
    if DAY % window == 0 and window != DAY:
        for (seg, _, b), (prof, ops) in list(partial.items()):
            day = (seg, DAY, b // DAY * DAY)
            if day in partial:
                old_prof, old_ops = partial[day]
                partial[day] = (old_prof.merge(prof), merge_operations(old_ops, ops))
            else:
                partial[day] = (prof, ops)
    return partial


def merge_bucket(
    store: Store, conn: sa.Connection, key: dict[str, Any], new: DatasetProfile, new_ops: Operations
) -> DatasetProfile:
    """Merge a profile and its operations into the stored bucket of ``key`` (locked, created
    when absent, marked dirty for evaluation); the merged profile."""
    old = store.bucket_profile(conn, key, lock=True)
    prof, ops = new, new_ops
    if old is not None:
        prof = DatasetProfile.from_bytes(old["profile"]).merge(new)
        ops = merge_operations(old["operations"], new_ops)
    store.put_bucket_profile(
        conn,
        {**key, "events": prof.rows, "profile": prof.to_bytes(), "operations": ops, "dirty": True},
    )
    return prof


def apply_buckets(
    store: Store, model: str, version: str, batch_ids: list[int], buckets: Buckets
) -> bool:
    """Merge the buckets into the stored profiles and mark the batches processed, in one
    transaction: all are applied, or none (False) when any batch is processed or swept
    already (another processor got there first)."""

    def body(conn: sa.Connection) -> bool:
        if not store.claim_unprocessed(conn, batch_ids):
            return False
        # in key order: two replicas' processors lock the rows they share in the same order
        for (seg, granularity, bucket), (new, new_ops) in sorted(
            buckets.items(), key=lambda item: item[0]
        ):
            key: dict[str, Any] = {
                "model": model,
                "version": version,
                "segment": seg,
                "granularity": granularity,
                "bucket": bucket,
            }
            merge_bucket(store, conn, key, new, new_ops)
        store.mark_processed(conn, batch_ids)
        return True

    return store.write(body)
