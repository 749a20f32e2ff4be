"""deploy/ keeps up with the service: the compose file and the Kubernetes example parse, their
probes name routes the service answers (also while it starts), every ``WATCHKEEPER_*`` they
set is a setting, and every file they mount or copy exists. Docker is not needed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from tests.service.fixtures import ServerFactory
from watchkeeper.server.starting import PROBES
from watchkeeper.settings import ENV_PREFIX, Settings, load_settings

DEPLOY = Path(__file__).parents[1] / "deploy"
ROOT = DEPLOY.parent


def _env_names(env: Any) -> set[str]:
    if isinstance(env, dict):
        return set(env)
    return {item["name"] for item in env or []}


def _settings_of(names: set[str]) -> set[str]:
    unknown = set()
    for name in names:
        if not name.startswith(ENV_PREFIX):
            continue
        field = name.removeprefix(ENV_PREFIX).lower()
        if field not in Settings.model_fields:
            unknown.add(name)
    return unknown


def test_compose_runs_replicas_behind_a_proxy_with_prometheus_and_grafana() -> None:
    path = DEPLOY / "compose" / "docker-compose.yaml"
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    assert {"postgres", "watchkeeper", "nginx", "prometheus", "grafana"} <= set(services)
    replica = services["watchkeeper"]
    assert replica["deploy"]["replicas"] >= 2
    assert not _settings_of(_env_names(replica["environment"]))
    env = replica["environment"]
    assert env["WATCHKEEPER_DATABASE_URL"].startswith("postgresql://")
    assert any(v.endswith(":" + env["WATCHKEEPER_LAKE_PATH"]) for v in replica["volumes"])
    load_settings(environ={k: str(v) for k, v in env.items()})  # every value parses
    assert "/healthz" in " ".join(replica["healthcheck"]["test"])
    dockerfile = ROOT / replica["build"]["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name} copies a missing {source}"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).exists(), f"{name} mounts a missing {source}"
    nginx = (path.parent / "nginx.conf").read_text()
    assert "watchkeeper:8700" in nginx and "proxy_next_upstream" in nginx


def test_kubernetes_probes_liveness_and_readiness_on_routes_the_service_answers(
    tmp_path: Path, server: ServerFactory
) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "watchkeeper.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert {"Deployment", "Service"} <= set(kinds)
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert not _settings_of(_env_names(container["env"]))
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert (live, ready) == ("/healthz", "/readyz")
    assert {live, ready} <= set(PROBES)  # answered at once while starting (migrating)
    srv = server(f"sqlite:///{tmp_path / 'state.db'}")  # and by a running `watchkeeper serve`
    with srv.client() as client:
        deadline = time.monotonic() + 60
        while client.get(ready).status_code != 200:
            assert time.monotonic() < deadline, client.get(ready).text
            time.sleep(0.05)
        assert client.get(live).json()["status"] == "ok"
    assert container["ports"][0]["containerPort"] == kinds["Service"]["spec"]["ports"][0]["port"]
