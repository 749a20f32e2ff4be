"""Models of the failing-slices and model-card routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from watchkeeper.server.schemas import Out


class SliceValue(Out):
    value: float | None
    low: float | None = None
    high: float | None = None


class FailingSlice(Out):
    description: str = Field(description="country=DE, income ≥ 80k")
    columns: list[str]
    conditions: list[dict[str, Any]] = Field(description="each column's range or categories")
    n: int = Field(description="labelled rows in the slice")
    n_rest: int
    metric: str = Field(description="accuracy or mae")
    slice: SliceValue
    rest: SliceValue
    gap: float = Field(description="how much worse than the rest, in the metric's units")
    p_value: float
    adjusted_p_value: float = Field(description="Holm-adjusted over every slice tested")
    impact: float = Field(description="rows × gap: the excess errors the slice carries")


class FailingSlicesResult(Out):
    metric: str | None
    test: str | None
    alpha: float | None
    rows: int = Field(description="labelled rows searched")
    tested: int
    significant: int
    slices: list[FailingSlice] = Field(description="ranked by impact")
    reason: str | None = Field(description="why nothing could be sought, or null")


class WindowSlices(Out):
    model: str
    version: str
    window_start: int
    window_seconds: int
    computed_at: float
    labels: int = Field(description="the labelled count the slices were computed from")
    sentence: str | None = Field(description="the worst slice in one line, or null")
    failing_slices: FailingSlicesResult
    windows: list[dict[str, Any]] = Field(
        description="the version's windows with slices kept, newest first"
    )


class ModelCard(Out):
    model: str
    version: str
    generated_by: str
    registered_at: float
    state: str | None
    champion: str | None
    metadata: dict[str, str] = Field(description="description, owner, intended_use")
    task: str
    reference: dict[str, Any]
    performance: dict[str, Any]
    drift: dict[str, Any]
    alerts: list[dict[str, Any]]
    failing_slices: dict[str, Any]
    attributions: dict[str, Any] | None = Field(description="null: not computed")
    lineage: dict[str, Any]
