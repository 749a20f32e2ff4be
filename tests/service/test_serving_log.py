"""How the served events reach the durable log: spooled and committed in groups (the default),
or committed per request (``serving_log = "sync"``), and what a request reads from memory.

The spool's promise is checked on a real ``watchkeeper serve``: with the SQLite database held
locked by this test (no commit can happen), requests are still answered 200 — their events
only in the spool — and the server is ``kill -9``ed under that load; once the lock is gone and
the server restarted, every prediction id answered 200 is stored exactly once (a request whose
answer the kill cut off is sent again with the same ids, as a client does: stored once too).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.fixtures import BACKENDS, ServerFactory, make_database, stored_ids
from tests.service.test_serving import ONNX, put_artifact, register, rows
from watchkeeper.store.state import Store

pytest.importorskip("onnxruntime", reason="the serve extra: pip install -e '.[dev]'")
pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def onnx_bytes() -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from tests.service.test_serving import training

    x, y = training()
    clf = LogisticRegression().fit(x, y)
    onx = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 3]))],
        options={id(clf): {"zipmap": False}},
        target_opset=15,
    )
    return bytes(onx.SerializeToString())


def served(client: httpx.Client, onnx_bytes: bytes) -> str:
    model = register(client)
    assert put_artifact(client, model, onnx_bytes, ONNX).status_code == 200
    return model


def body(ids: list[str], seed: int = 0) -> dict[str, Any]:
    x = rows(len(ids), seed)
    return {"rows": [dict(zip(["x1", "x2", "x3"], map(float, r), strict=True)) for r in x],
            "prediction_ids": ids}  # fmt: skip


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool").glob("*.spool"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_answered_events_survive_a_kill_while_the_database_is_locked(
    backend: str,
    tmp_path: Path,
    server: ServerFactory,
    onnx_bytes: bytes,
    wait_for: Callable[..., None],
    open_store: Callable[[str], Store],
) -> None:
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url, data_dir=tmp_path / "data")
        with srv.client() as client:
            model = served(client, onnx_bytes)
            assert (
                client.post(f"/v1/models/{model}/predict", json=body(["warm"])).status_code == 200
            )
        acknowledged: set[str] = set()
        statuses: list[int] = []
        stop = threading.Event()

        def load(n: int) -> None:
            i = 0
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    ids = [f"c{n}-{i}-{j}" for j in range(3)]
                    i += 1
                    while True:  # as a client does: the same ids again until an answer
                        try:
                            r = http.post(f"{srv.url}/v1/models/{model}/predict", json=body(ids, i))
                        except httpx.TransportError:  # the server is down
                            time.sleep(0.05)
                            continue
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            acknowledged.update(r.json()["prediction_ids"])
                        break

        threads = [threading.Thread(target=load, args=(n,)) for n in range(2)]
        for th in threads:
            th.start()
        locked = backend == "sqlite"  # PostgreSQL: killed with what the last 100 ms spooled
        lock = sqlite3.connect(":memory:")  # PostgreSQL: a lock of nothing
        if locked:
            lock = sqlite3.connect(tmp_path / "db" / "state.db", isolation_level=None, timeout=30)
        try:
            wait_for(lambda: len(acknowledged) > 150, "answers before the lock")
            if locked:
                lock.execute("BEGIN IMMEDIATE")  # no commit of the server's can happen now
            before = len(acknowledged)
            wait_for(lambda: len(acknowledged) > before + 150, "answers while locked")
            if locked:
                assert any(p.stat().st_size for p in segments(srv.data_dir)), "nothing spooled"
            srv.kill()  # kill -9 with answered events only in the spool
        finally:
            lock.rollback()
            lock.close()
        killed_at = len(acknowledged)
        srv.start()
        wait_for(lambda: len(acknowledged) > killed_at + 150, "answers after the restart")
        stop.set()
        for th in threads:
            th.join()
        assert set(statuses) == {200}, sorted(set(statuses))
        acknowledged.add("warm")
        with srv.client() as client:
            wait_for(
                lambda: (
                    client.get(f"/v1/models/{model}").json()["events_total"] == len(acknowledged)
                ),
                f"the {len(acknowledged)} answered events stored",
                timeout=120,
            )
            wait_for(
                lambda: client.get(f"/v1/models/{model}").json()["events_pending"] == 0,
                "the processor to index them",
                timeout=120,
            )
        stored = stored_ids(open_store(url), model)
        assert len(stored) == len(set(stored)), "an id stored twice"
        assert set(stored) == acknowledged
        if locked:
            assert "segment(s) of an ended process to replay" in srv.log_tail(100_000)


def test_sync_mode_commits_before_the_answer_and_spools_nothing(
    tmp_path: Path, server: ServerFactory, onnx_bytes: bytes
) -> None:
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url, data_dir=tmp_path / "data", env={"WATCHKEEPER_SERVING_LOG": "sync"})
        with srv.client() as client:
            model = served(client, onnx_bytes)
            for i in range(3):
                ids = [f"s{i}-{j}" for j in range(4)]
                r = client.post(f"/v1/models/{model}/predict", json=body(ids, i))
                assert r.status_code == 200, r.text
                # committed before the answer: counted at once
                assert client.get(f"/v1/models/{model}").json()["events_total"] == 4 * (i + 1)
        assert not (srv.data_dir / "spool").exists()


def test_a_new_version_and_a_promotion_answer_the_next_request(
    tmp_path: Path, server: ServerFactory, onnx_bytes: bytes
) -> None:
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url, data_dir=tmp_path / "data")
        with srv.client() as client:
            model = served(client, onnx_bytes)
            predict = f"/v1/models/{model}/predict"
            assert client.post(predict, json=body(["a"])).json()["version"] == "v1"
            import io

            import pyarrow as pa
            import pyarrow.parquet as pq

            from tests.service.test_serving import training

            x, y = training(200, seed=2)
            buf = io.BytesIO()
            table = {"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": y}
            pq.write_table(pa.table(table), buf)
            r = client.put(
                f"/v1/models/{model}/versions/v2",
                params={"target": "label", "prediction": "pred"},
                content=buf.getvalue(),
                headers={"content-type": "application/vnd.apache.parquet"},
            )
            assert r.status_code == 201, r.text  # the new champion, without an artifact yet
            r = client.post(predict, json=body(["b"]))
            assert r.status_code == 404 and "v2" in r.json()["error"]["message"], r.text
            r = client.put(
                f"/v1/models/{model}/versions/v2/artifact",
                content=onnx_bytes,
                headers={"content-type": ONNX},
            )
            assert r.status_code == 200, r.text
            assert client.post(predict, json=body(["c"])).json()["version"] == "v2"
            infer = {
                "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64",
                            "data": [0.1, 0.2, 0.3]}]
            }  # fmt: skip
            assert (
                client.post(f"/v2/models/{model}/infer", json=infer).json()["model_version"] == "v2"
            )
            r = client.post(f"/v1/models/{model}/versions/v1/challenge", json={"mode": "shadow"})
            assert r.status_code == 200, r.text
            r = client.post(f"/v1/models/{model}/promote", json={"version": "v1"})
            assert r.status_code == 200, r.text
            assert client.post(predict, json=body(["d"])).json()["version"] == "v1"


def test_a_change_by_another_process_is_seen_within_the_cache_bound(tmp_path: Path) -> None:
    """The cache answers from memory (a change through another Store, as another process
    makes it, is not seen at once) and reads again after ``seconds``."""
    from tests.service.fixtures import reference_table
    from watchkeeper.ingest.service import IngestService
    from watchkeeper.serving.metadata import Metadata
    from watchkeeper.settings import Settings
    from watchkeeper.store import promotion

    settings = Settings(data_dir=tmp_path)
    store, other = Store(settings.sqlalchemy_url), Store(settings.sqlalchemy_url)
    service = IngestService(store, settings)
    service.register("m", reference_table(), prediction="pred")
    service.register("m", reference_table(seed=1), prediction="pred", version="v2", champion=False)
    meta = Metadata(store, seconds=0.5)
    assert meta.champion("m") == "v1"
    promotion.challenge(other, "m", "v2", mode="shadow")
    promotion.promote(other, "m", "v2")
    assert meta.champion("m") == "v1"  # from memory
    time.sleep(0.6)
    assert meta.champion("m") == "v2"
    promotion.challenge(store, "m", "v1", mode="shadow")
    promotion.promote(store, "m", "v1")  # through this process's store: seen at once
    assert meta.champion("m") == "v1"
    assert np.isscalar(meta.pending_events())
