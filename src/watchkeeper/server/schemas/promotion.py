"""Models of the promotion routes: version states, challenge, promote, policy, verdicts."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from watchkeeper.server.schemas import In, Out


class VersionState(Out):
    version: str
    state: str = Field(description="champion, challenger, retired or registered")
    mode: str | None = Field(None, description="a challenger's: shadow or canary")
    share: float | None = Field(None, description="a canary's share of the requests")
    entity_key: str | None = None
    since: float | None = None


class VersionStates(Out):
    model: str
    champion: str | None
    versions: list[VersionState]
    shadow: dict[str, int] = Field(
        description="shadow copies of this process: dropped (queue full), scored, pending"
    )


class ChallengeIn(In):
    """Make a version a challenger."""

    mode: str = Field(description="shadow or canary")
    share: float | None = Field(None, description="a canary's share of the requests, 0-1")
    entity_key: str | None = Field(
        None, description="the input whose value keeps an entity on one version (canary)"
    )


class PromoteIn(In):
    version: str


class Swapped(Out):
    model: str
    champion: str
    previous: str | None


class PolicyIn(In):
    """A promotion policy (docs/promotion.md#the-promotion-policy); missing fields take
    their defaults."""

    min_labelled: int | None = Field(None, description="labelled shadow pairs needed (200)")
    metric: str | None = Field(None, description="accuracy, f1, roc_auc, mae or rmse")
    alpha: float | None = Field(None, description="the paired test's level (0.05)")
    max_latency_ratio: float | None = Field(
        None, description="challenger latency p95 at most this times the champion's (2)"
    )
    latency_slack_ms: float | None = Field(
        None, description="or at most this many milliseconds above the champion's (1)"
    )
    max_error_rate_increase: float | None = Field(
        None, description="challenger error rate at most the champion's plus this (0.01)"
    )
    mode: str | None = Field(None, description="auto or manual (manual)")


class PolicyOut(Out):
    model: str
    policy: dict[str, Any]
    configured: bool = Field(description="false: the defaults, no verdicts are made")
    source: str = Field(description="api, settings (the settings file) or none")


class VerdictOut(Out):
    id: int
    champion: str
    challenger: str
    at: float
    decision: str = Field(description="promote, ready, retire or collecting")
    evidence: dict[str, Any]


class Verdicts(Out):
    model: str
    verdicts: list[VerdictOut] = Field(description="newest first")
