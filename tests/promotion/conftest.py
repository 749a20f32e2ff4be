"""A state store on each backend with a model ``churn`` of three versions: ``v1`` the
champion, ``v2`` and ``v3`` registered beside it."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from watchkeeper.profiles import profile_reference
from watchkeeper.schema import Schema
from watchkeeper.store.state import Store

SCHEMA = {"version": 1, "columns": [{"name": "age", "type": "numeric", "role": "feature"}]}


@pytest.fixture
def store(database_url: str, open_store: Callable[[str], Store]) -> Store:
    store = open_store(database_url)
    profile = profile_reference(pa.table({"age": [1.0, 2.0]}), Schema.from_dict(SCHEMA))
    store.create_model("churn", window_seconds=3600, label_horizon_seconds=1e5, retention_days=30)
    for v in ("v1", "v2", "v3"):
        store.add_version(
            "churn",
            v,
            schema=SCHEMA,
            reference_profile=profile.to_bytes(),
            reference_rows=2,
            reference_sample=None,
            champion=v == "v1",
        )
    return store
