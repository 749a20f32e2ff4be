"""watchkeeper: ML model monitoring from mergeable profiles.

The library in two lines::

    report = watchkeeper.compare(reference_df, current_df)
    report.save_html("drift.html")
"""

__version__ = "0.1.0"

from watchkeeper.errors import InputError, SchemaError, WatchkeeperError
from watchkeeper.profile import (
    DatasetProfile,
    ProfileSpec,
    profile,
    profile_reference,
    profile_table,
)
from watchkeeper.report import Report, compare
from watchkeeper.schema import ColumnSchema, ColumnType, Role, Schema, infer_schema

__all__ = [
    "ColumnSchema",
    "ColumnType",
    "DatasetProfile",
    "InputError",
    "ProfileSpec",
    "Report",
    "Role",
    "Schema",
    "SchemaError",
    "WatchkeeperError",
    "__version__",
    "compare",
    "infer_schema",
    "profile",
    "profile_reference",
    "profile_table",
]
