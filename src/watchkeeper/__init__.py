"""watchkeeper: ML model monitoring from mergeable profiles.

The library in two lines::

    report = watchkeeper.compare(reference_df, current_df)
    report.save_html("drift.html")

Fitted once, a reference compares many windows, or a whole period chunk by chunk::

    ref = watchkeeper.Reference.fit(reference_df, target="y", prediction="y_hat")
    ref.analyze(production_df, chunk_period="1D").save_html("timeline.html")

Names are imported on first use, so ``import watchkeeper.sdk`` in a model service loads no
numpy, pyarrow or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "InputError": "watchkeeper.errors",
    "SchemaError": "watchkeeper.errors",
    "WatchkeeperError": "watchkeeper.errors",
    "DatasetProfile": "watchkeeper.profiles",
    "ProfileSpec": "watchkeeper.profiles",
    "profile": "watchkeeper.profiles",
    "profile_reference": "watchkeeper.profiles",
    "profile_table": "watchkeeper.profiles",
    "Reference": "watchkeeper.reference",
    "Report": "watchkeeper.report",
    "Timeline": "watchkeeper.analysis.timeline",
    "compare": "watchkeeper.report",
    "ColumnSchema": "watchkeeper.schema",
    "ColumnType": "watchkeeper.schema",
    "Role": "watchkeeper.schema",
    "Schema": "watchkeeper.schema",
    "explain_schema": "watchkeeper.schema",
    "infer_schema": "watchkeeper.schema",
}

__all__ = [
    "ColumnSchema",
    "ColumnType",
    "DatasetProfile",
    "InputError",
    "ProfileSpec",
    "Reference",
    "Report",
    "Role",
    "Schema",
    "SchemaError",
    "Timeline",
    "WatchkeeperError",
    "__version__",
    "compare",
    "explain_schema",
    "infer_schema",
    "profile",
    "profile_reference",
    "profile_table",
]

if TYPE_CHECKING:
    from watchkeeper.analysis.timeline import Timeline
    from watchkeeper.errors import InputError, SchemaError, WatchkeeperError
    from watchkeeper.profiles import (
        DatasetProfile,
        ProfileSpec,
        profile,
        profile_reference,
        profile_table,
    )
    from watchkeeper.reference import Reference
    from watchkeeper.report import Report, compare
    from watchkeeper.schema import (
        ColumnSchema,
        ColumnType,
        Role,
        Schema,
        explain_schema,
        infer_schema,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
