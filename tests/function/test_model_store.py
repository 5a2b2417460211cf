"""Model store: the bundled model, the S3 champion pointer, refresh and swap, and bad models."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.errors import ModelUnavailable
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
from credit_api.model_store import POINTER_KEY, ModelStore, load_bundled, publish, read_pointer
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import Settings
from fastapi.testclient import TestClient

from tests.function.conftest import BUCKET, BUNDLED, s3_store
from tests.support import emf_records, log_records, metric_values


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def model_copy(tmp_path: Path, name: str, version: str | None = None) -> Path:
    """A copy of the bundled model, optionally under another version name (same bytes)."""
    target = tmp_path / name
    shutil.copytree(BUNDLED, target)
    if version is not None:
        manifest = json.loads((target / MANIFEST_FILE).read_text())
        manifest["model_version"] = version
        (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def bundled_version() -> str:
    return json.loads((BUNDLED / MANIFEST_FILE).read_text())["model_version"]


def test_bundled_model_loads_and_verifies() -> None:
    model = load_bundled(BUNDLED)
    assert model.version == bundled_version()
    assert 0 <= model.scorer.predict([EXAMPLE_APPLICANT])[0] <= 1


def test_publish_writes_version_then_pointer(s3: Any) -> None:
    pointer = publish(s3, BUCKET, BUNDLED)
    assert read_pointer(s3, BUCKET) == pointer
    manifest = json.loads((BUNDLED / MANIFEST_FILE).read_text())
    assert pointer["model_version"] == manifest["model_version"]
    assert pointer["sha256"] == manifest["onnx_sha256"]
    stored = s3.get_object(Bucket=BUCKET, Key=f"{pointer['key']}/{MODEL_FILE}")["Body"].read()
    assert stored == (BUNDLED / MODEL_FILE).read_bytes()
    assert pointer["key"].startswith("models/") and pointer["published_at"].endswith("Z")


def test_publish_refuses_a_model_that_fails_the_checks(s3: Any, tmp_path: Path) -> None:
    broken = model_copy(tmp_path, "broken")
    (broken / MODEL_FILE).write_bytes(b"not onnx")
    with pytest.raises(Exception, match="sha256"):
        publish(s3, BUCKET, broken)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_cold_start_loads_the_s3_champion(s3: Any, settings: Settings, tmp_path: Path) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))
    model = s3_store(settings, s3).current()
    assert model.version == "champion-2"
    assert model.source.startswith(f"s3://{BUCKET}/models/")


def test_pointer_is_reread_only_after_the_refresh_interval(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    clock = Clock()
    store = ModelStore(replace(settings, model_bucket=BUCKET, model_refresh_seconds=300), s3=s3, clock=clock)
    assert store.current().version == "champion-1"

    publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))
    clock.now += 299
    assert store.current().version == "champion-1"
    clock.now += 2
    assert store.current().version == "champion-1"  # the refresh runs in the background
    store.settle()
    assert store.current().version == "champion-2"


def test_requests_in_flight_keep_their_model_during_a_swap(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    """Many threads score while the champion changes: none fails, each sees a whole model."""
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    app = create_app(replace(settings, model_bucket=BUCKET, model_refresh_seconds=0), store=None)
    app.state.service.store = s3_store(settings, s3, model_refresh_seconds=0)
    client = TestClient(app)
    assert client.post("/predict", json=EXAMPLE_APPLICANT).json()["model_version"] == "champion-1"

    results: list[tuple[int, str]] = []
    failures: list[BaseException] = []

    def score() -> None:
        try:
            for _ in range(15):
                response = client.post("/predict", json=EXAMPLE_APPLICANT)
                results.append((response.status_code, response.json().get("model_version", "")))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=score) for _ in range(4)]
    for thread in threads:
        thread.start()
    publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))
    for thread in threads:
        thread.join()
    store = app.state.service.store
    for _ in range(2):  # the second load surely started after the publish
        store.current()
        store.settle()
    assert not failures
    assert all(status == 200 for status, _ in results)
    assert {version for _, version in results} <= {"champion-1", "champion-2"}
    assert client.post("/predict", json=EXAMPLE_APPLICANT).json()["model_version"] == "champion-2"


def test_corrupted_new_model_is_never_served(s3: Any, settings: Settings, tmp_path: Path, stdout) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3, model_refresh_seconds=0)
    assert store.current().version == "champion-1"

    pointer = publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))
    s3.put_object(Bucket=BUCKET, Key=f"{pointer['key']}/{MODEL_FILE}", Body=b"\x08\x07corrupted")
    assert store.current().version == "champion-1"
    store.settle()
    assert "sha256" in (store.last_error or "")

    from credit_api.observability import metrics

    metrics.flush_metrics()
    out = stdout()
    assert metric_values(emf_records(out), "ModelRefreshFailures") == [1.0]
    failures = [r for r in log_records(out) if r["message"] == "model not loaded"]
    assert failures and "sha256" in failures[0]["reason"]


def test_pointer_to_a_missing_version_keeps_the_current_model(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3, model_refresh_seconds=0)
    assert store.current().version == "champion-1"
    pointer = {"model_version": "ghost", "key": "models/ghost-000000000000", "sha256": "0" * 64}
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps(pointer).encode())
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    assert "NoSuchKey" in (store.last_error or "")


def test_manifest_for_another_schema_is_refused(s3: Any, settings: Settings, tmp_path: Path) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3, model_refresh_seconds=0)
    store.current()
    other = model_copy(tmp_path, "v2", version="champion-2")
    pointer = publish(s3, BUCKET, other)
    manifest = json.loads((other / MANIFEST_FILE).read_text())
    manifest["schema_hash"] = "f" * 64
    s3.put_object(Bucket=BUCKET, Key=f"{pointer['key']}/{MANIFEST_FILE}", Body=json.dumps(manifest).encode())
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    assert "schema" in (store.last_error or "")


def test_garbage_pointer_keeps_the_current_model(s3: Any, settings: Settings, tmp_path: Path) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store = s3_store(settings, s3, model_refresh_seconds=0)
    store.current()
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=b"{not json")
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    assert "invalid pointer" in (store.last_error or "")


def test_unreachable_champion_at_cold_start_falls_back_to_the_bundled_model(
    s3: Any, settings: Settings
) -> None:
    store = s3_store(settings, s3)  # bucket exists, no pointer published
    model = store.current()
    assert model.version == bundled_version()
    assert model.source.startswith("bundled:")
    assert "NoSuchKey" in (store.last_error or "")


def test_missing_model_is_a_503_not_a_crash(settings: Settings, tmp_path: Path, sqlite_log) -> None:
    empty = tmp_path / "no-model"
    empty.mkdir()
    client = TestClient(create_app(replace(settings, model_dir=empty), log=sqlite_log))
    for path in ("/health", "/model"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json()["error"] == "model_unavailable"
    response = client.post("/predict", json=EXAMPLE_APPLICANT)
    assert response.status_code == 503
    assert "decision_id" not in response.json()
    assert sqlite_log.get_many([]) == {}


def test_store_retries_soon_after_a_failed_first_load(settings: Settings, tmp_path: Path) -> None:
    model_dir = tmp_path / "later"
    clock = Clock()
    store = ModelStore(replace(settings, model_dir=model_dir), clock=clock)
    with pytest.raises(ModelUnavailable):
        store.current()
    shutil.copytree(BUNDLED, model_dir)
    with pytest.raises(ModelUnavailable):
        store.current()  # within the retry delay: no new attempt
    clock.now += 10
    assert store.current().version == bundled_version()


def test_truncated_bundled_model_is_refused(settings: Settings, tmp_path: Path) -> None:
    broken = model_copy(tmp_path, "truncated")
    data = (broken / MODEL_FILE).read_bytes()
    (broken / MODEL_FILE).write_bytes(data[: len(data) // 2])
    store = ModelStore(replace(settings, model_dir=broken))
    with pytest.raises(ModelUnavailable):
        store.current()
    assert "sha256" in (store.last_error or "")


@pytest.mark.parametrize("body", [b"[]", b"null", b'"x"', b"42", b'[{"model_version": "v"}]'])
def test_pointer_that_is_not_an_object_is_refused_at_cold_start_and_on_refresh(
    s3: Any, settings: Settings, tmp_path: Path, body: bytes
) -> None:
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=body)
    with pytest.raises(Exception, match="not an object"):
        read_pointer(s3, BUCKET)
    store = s3_store(settings, s3, model_refresh_seconds=0)
    assert store.current().version == bundled_version()
    assert "not an object" in (store.last_error or "")

    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    store.settle()  # the refresh that request started, done before the pointer changes under it
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=body)
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    assert "not an object" in (store.last_error or "")


class GatedS3:
    """boto3's S3 client with ``get_object`` held until ``gate`` opens: S3 slow or hanging."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.gate = threading.Event()
        self.calls = 0

    def get_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.gate.wait(30)
        return self.s3.get_object(**kwargs)


def test_slow_s3_at_cold_start_serves_the_bundled_model_then_the_champion(
    s3: Any, settings: Settings, tmp_path: Path, stdout
) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    gated = GatedS3(s3)
    store = ModelStore(
        replace(settings, model_bucket=BUCKET, champion_wait_seconds=0.2), s3=gated, clock=Clock()
    )
    assert store.current().version == bundled_version()  # waited 0.2 s, not for S3
    status = store.status()
    assert status["status"] == "degraded" and status["serving"] == "bundled" and status["refreshing"]
    assert "did not load within 0.2 s" in status["last_refresh_error"]

    gated.gate.set()
    store.settle()
    assert store.current().version == "champion-1"
    status = store.status()
    assert status["status"] == "ok" and status["serving"] == "champion"
    assert status["champion_version"] == "champion-1" and status["last_refresh_error"] is None
    assert status["last_refresh_at"] is not None

    from credit_api.observability import metrics

    metrics.flush_metrics()
    out = emf_records(stdout())
    assert metric_values(out, "ModelFallbackToBundled") == [1.0]
    assert metric_values(out, "ModelSwaps") == [1.0]


def test_a_refresh_never_makes_the_request_wait(s3: Any, settings: Settings, tmp_path: Path) -> None:
    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    clock = Clock()
    gated = GatedS3(s3)
    gated.gate.set()
    refreshing = replace(settings, model_bucket=BUCKET, model_refresh_seconds=60)
    store = ModelStore(refreshing, s3=gated, clock=clock)
    assert store.current().version == "champion-1"
    store.settle()  # the first load's own reads are all counted before the baseline is taken
    publish(s3, BUCKET, model_copy(tmp_path, "v2", version="champion-2"))
    gated.gate.clear()
    clock.now += 61
    calls = gated.calls
    assert store.current().version == "champion-1"  # answered while the refresh is held
    assert store.status()["refreshing"] is True
    held = calls + 2  # a refresh reads the champion and the policy pointers side by side
    deadline = time.monotonic() + 5
    while gated.calls < held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gated.calls == held
    assert store.current().version == "champion-1" and gated.calls == held  # one refresh at a time
    gated.gate.set()
    store.settle()
    assert store.current().version == "champion-2"


def test_a_stuck_refresh_is_abandoned_and_its_result_dropped(
    s3: Any, settings: Settings, tmp_path: Path
) -> None:
    from credit_api.model_store import STALE_LOAD_SECONDS

    publish(s3, BUCKET, model_copy(tmp_path, "v1", version="champion-1"))
    clock = Clock()
    stuck = GatedS3(s3)
    store = ModelStore(
        replace(settings, model_bucket=BUCKET, model_refresh_seconds=0, champion_wait_seconds=0.1),
        s3=stuck,
        clock=clock,
    )
    assert store.current().version == bundled_version()
    clock.now += STALE_LOAD_SECONDS + 1
    store._s3 = s3  # the network is back; the stuck load still holds its old connection
    store.current()
    store.settle()
    assert store.current().version == "champion-1"
    stuck.gate.set()  # the abandoned load finishes late: nothing changes
    time.sleep(0.3)
    store._apply()
    assert store.current().version == "champion-1" and store.last_error is None


def test_health_says_what_is_served_and_why(s3: Any, settings: Settings, sqlite_log) -> None:
    app = create_app(replace(settings, model_bucket=BUCKET), store=s3_store(settings, s3), log=sqlite_log)
    health = TestClient(app).get("/health").json()  # no champion published
    assert health["status"] == "degraded" and health["serving"] == "bundled"
    assert health["model_version"] == bundled_version() and health["model_loaded"] is True
    assert "NoSuchKey" in health["last_refresh_error"] and health["champion_version"] is None
