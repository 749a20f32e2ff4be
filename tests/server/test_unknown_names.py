"""A misspelt name in a metric series query is an error naming the valid ones, not a 200 with
no points that looks like a model without data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.test_bad_requests import assert_error


@pytest.fixture
def client(api: Any) -> Any:
    with api.server.client() as c:
        yield c


def _series(client: httpx.Client, model: str, **params: str) -> httpx.Response:
    return client.get(f"/v1/models/{model}/metrics", params=params)


def test_an_unknown_metric_is_a_404_naming_the_catalogue(client: httpx.Client, api: Any) -> None:
    r = _series(client, api.model, metric="acuracy")
    assert_error(r, 404, "unknown metric 'acuracy'", "did you mean 'accuracy'", "drifted_share")


def test_an_unknown_feature_is_a_404_naming_the_metric_s_features(
    client: httpx.Client, api: Any
) -> None:
    r = _series(client, api.model, metric="drift_statistic", feature="incme")
    assert_error(r, 404, "unknown feature", "'incme'", "did you mean 'income'", "age", "plan")
    assert "valid: " in r.json()["error"]["message"]
    assert "pred" not in r.json()["error"]["message"].split("valid: ")[1]  # its own metric
    r = _series(client, api.model, metric="prediction_drift", feature="age")
    assert_error(r, 404, "unknown feature", "valid: pred")
    for metric, feature in [("drift_statistic", "income"), ("missing_share", "pred")]:
        assert _series(client, api.model, metric=metric, feature=feature).status_code == 200


def test_a_feature_is_given_exactly_when_the_metric_is_per_feature(
    client: httpx.Client, api: Any
) -> None:
    assert_error(_series(client, api.model, metric="count", feature="age"), 400, "per feature")
    r = _series(client, api.model, metric="drift_statistic")
    assert_error(r, 400, "per feature", "give feature", "income")
    assert _series(client, api.model, metric="count").status_code == 200


def test_an_unknown_version_or_segment_column_is_a_404(client: httpx.Client, api: Any) -> None:
    assert_error(_series(client, api.model, metric="count", version="v2"), 404, "'v2'", "v1")
    assert _series(client, api.model, metric="count", version="v1").status_code == 200
    r = _series(client, api.model, metric="count", segment="regoin=eu")
    assert_error(r, 404, "unknown segment 'regoin=eu'", "region=<value>")
    for segment in ("region=eu", "region=a|b", "*"):
        assert _series(client, api.model, metric="count", segment=segment).status_code == 200


def test_an_unknown_model_stays_a_404(client: httpx.Client) -> None:
    assert_error(_series(client, "nonesuch", metric="count"), 404, "'nonesuch'")
