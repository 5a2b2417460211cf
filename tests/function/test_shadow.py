"""The shadow challenger: its pointer, its loading beside the champion, and its score in the record only."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from credit_api import registry, shadow, underwriting
from credit_api.api import create_app
from credit_api.decision_log import DynamoDecisionLog
from credit_api.manifest import MODEL_FILE
from credit_api.model_store import SHADOW_KEY, ModelStore, load_bundled
from credit_api.observability import metrics
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import Settings
from credit_api.underwriting import assess
from fastapi.testclient import TestClient
from onnx import TensorProto

from tests.function.conftest import BUCKET, BUNDLED, IDEMPOTENCY, TABLE
from tests.shadow_support import amount_graph, challenger_dir
from tests.support import emf_records, metric_values

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("decision_id",)


def applicants(n: int = 40) -> list[dict[str, Any]]:
    """The first ``n`` rows of data/credit.csv as applicants (amounts from a few hundred to ~15,000)."""
    with (ROOT / "data" / "credit.csv").open() as f:
        rows = list(csv.DictReader(f))[:n]
    return [
        {k: int(v) if v.lstrip("-").isdigit() else v for k, v in row.items() if k != "default"}
        for row in rows
    ]


@pytest.fixture(scope="module")
def client() -> Any:
    """One S3 client for the module (making one costs ~0.5 s); moto mocks it in each test's ``aws``
    (moto adds its handler to botocore's built-in ones on import, so it is imported first)."""
    import boto3
    import moto  # noqa: F401

    return boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def versioned(aws: None, client: Any) -> Any:
    """A bucket versioned as the template's ModelBucket is (histories are object versions)."""
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def stored(versioned: Any, tmp_path: Path) -> dict[str, dict[str, str]]:
    """A champion (the bundled model) and a stored challenger that scores by amount."""
    champion = registry.publish(versioned, BUCKET, BUNDLED, by="test", reason="first champion")
    challenger, _ = registry.store_dir(versioned, BUCKET, challenger_dir(tmp_path, "challenger-1"))
    return {"champion": registry.ref_of(champion), "challenger": challenger}


def s3_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, model_bucket=BUCKET, **changes)


def shadowed_app(settings: Settings, s3: Any, log: Any) -> tuple[Any, ModelStore]:
    store = ModelStore(s3_settings(settings), s3=s3)
    store.current()
    store.settle()
    return create_app(s3_settings(settings), store=store, log=log), store


# ---------------------------------------------------------------- the pointer


def test_set_show_clear_and_the_history_record_who_and_why(versioned: Any, stored: dict) -> None:
    assert shadow.read(versioned, BUCKET).pointer is None
    document = shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="alice", reason="try it")
    current = shadow.read(versioned, BUCKET)
    assert current.pointer == document and current.version == "challenger-1"
    assert document["sha256"] == stored["challenger"]["sha256"]
    assert shadow.clear(versioned, BUCKET, by="bob", reason="enough data") is not None
    assert shadow.read(versioned, BUCKET).pointer is None
    assert shadow.clear(versioned, BUCKET, by="bob", reason="again") is None  # nothing to clear: no write
    entries = shadow.history(versioned, BUCKET)
    assert [(e["action"], e["version"], e["by"], e["reason"]) for e in entries] == [
        ("clear", None, "bob", "enough data"),
        ("shadow", "challenger-1", "alice", "try it"),
    ]
    assert entries[0]["previous"] == "challenger-1"
    assert [e["action"] for e in registry.history(versioned, BUCKET)] == ["promote"]  # the champion's own


def test_set_and_clear_are_conditional_on_the_pointer_read(
    versioned: Any, stored: dict, tmp_path: Path
) -> None:
    other, _ = registry.store_dir(
        versioned, BUCKET, challenger_dir(tmp_path, "challenger-2", amount_graph(5000))
    )
    before = shadow.read(versioned, BUCKET)  # no shadow yet: the first set needs IfNoneMatch
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="a", reason="first", current=before)
    with pytest.raises(shadow.ShadowChanged):
        shadow.set_shadow(versioned, BUCKET, other, by="b", reason="also first", current=before)
    seen = shadow.read(versioned, BUCKET)
    shadow.set_shadow(versioned, BUCKET, other, by="c", reason="replace", current=seen)
    with pytest.raises(shadow.ShadowChanged):
        shadow.clear(versioned, BUCKET, by="d", reason="stale", current=seen)
    with pytest.raises(shadow.ShadowChanged):
        shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="e", reason="stale", current=seen)
    assert shadow.read(versioned, BUCKET).version == "challenger-2"
    assert len(shadow.history(versioned, BUCKET)) == 2


def test_only_a_verified_version_other_than_the_champion_can_be_shadowed(
    versioned: Any, stored: dict
) -> None:
    tampered = stored["challenger"]
    versioned.put_object(Bucket=BUCKET, Key=f"{tampered['key']}/{MODEL_FILE}", Body=b"\x08\x07tampered")
    with pytest.raises(registry.Unverified, match="sha256"):
        shadow.set_shadow(versioned, BUCKET, tampered, by="t", reason="r")
    with pytest.raises(registry.RegistryError, match="is the champion"):
        shadow.set_shadow(versioned, BUCKET, stored["champion"], by="t", reason="r")
    with pytest.raises(registry.RegistryError, match="needs a reason"):
        shadow.set_shadow(versioned, BUCKET, stored["champion"], by="t", reason="  ")
    assert shadow.read(versioned, BUCKET).etag is None  # nothing was written


# ---------------------------------------------------------------- loading


def test_the_store_loads_the_shadow_with_the_champion_and_health_shows_it(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any
) -> None:
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    app, store = shadowed_app(settings, versioned, sqlite_log)
    assert store.current().version == load_bundled(BUNDLED).version
    assert store.shadow is not None and store.shadow.version == "challenger-1"
    health = TestClient(app).get("/health").json()
    assert health["status"] == "ok" and health["shadow_version"] == "challenger-1"
    assert health["shadow_source"].startswith(f"s3://{BUCKET}/models/challenger-1-")
    assert health["shadow_error"] is None


@pytest.mark.parametrize("breakage", ["garbage pointer", "tampered model", "missing version"])
def test_a_broken_shadow_is_refused_counted_and_shown_and_the_champion_serves(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any, stdout: Any, breakage: str
) -> None:
    ref = stored["challenger"]
    if breakage == "garbage pointer":
        versioned.put_object(Bucket=BUCKET, Key=SHADOW_KEY, Body=b"[1, 2")
    elif breakage == "tampered model":
        shadow.set_shadow(versioned, BUCKET, ref, by="t", reason="r")
        versioned.put_object(Bucket=BUCKET, Key=f"{ref['key']}/{MODEL_FILE}", Body=b"\x08\x07tampered")
    else:
        document = {**ref, "key": "models/ghost-000000000000"}
        versioned.put_object(Bucket=BUCKET, Key=SHADOW_KEY, Body=json.dumps(document).encode())
    app, store = shadowed_app(settings, versioned, sqlite_log)
    client = TestClient(app)
    response = client.post("/predict", json=EXAMPLE_APPLICANT)
    assert response.status_code == 200
    assert store.shadow is None and store.current().source.startswith("s3://")
    assert sqlite_log.get(response.json()["decision_id"])["shadow"] is None
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["shadow_version"] is None
    assert health["shadow_error"].startswith("shadow")
    metrics.flush_metrics()
    assert sum(metric_values(emf_records(stdout()), "ShadowLoadFailures")) == 1.0


def test_a_bad_new_shadow_keeps_the_running_one_and_a_cleared_one_stops(
    versioned: Any, stored: dict, settings: Settings, tmp_path: Path
) -> None:
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    store = ModelStore(s3_settings(settings, model_refresh_seconds=0), s3=versioned)
    store.current()
    store.settle()
    assert store.shadow is not None and store.shadow.version == "challenger-1"
    versioned.put_object(Bucket=BUCKET, Key=SHADOW_KEY, Body=b'{"model_version": 3}')
    store.current()
    store.settle()
    assert store.shadow.version == "challenger-1" and "shadow" in (store.shadow_error or "")
    shadow.clear(versioned, BUCKET, by="t", reason="done")
    store.current()
    store.settle()
    assert store.shadow is None and store.shadow_error is None


# ---------------------------------------------------------------- scoring


def without(body: Any) -> Any:
    """The answer less what differs between any two calls (the fresh random decision ids)."""
    if isinstance(body, dict):
        return {k: without(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [without(v) for v in body]
    return body


def test_the_answer_is_the_same_with_and_without_a_shadow(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any
) -> None:
    batch = {"applicants": applicants()}
    plain, _ = shadowed_app(settings, versioned, sqlite_log)
    plain_client = TestClient(plain)
    single, many = (
        plain_client.post("/predict", json=EXAMPLE_APPLICANT),
        plain_client.post("/predict/batch", json=batch),
    )
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    app, store = shadowed_app(settings, versioned, sqlite_log)
    assert store.shadow is not None
    client = TestClient(app)
    single_s, many_s = (
        client.post("/predict", json=EXAMPLE_APPLICANT),
        client.post("/predict/batch", json=batch),
    )
    assert without(single_s.json()) == without(single.json())
    assert without(many_s.json()) == without(many.json())
    assert single_s.content.replace(single_s.json()["decision_id"].encode(), b"") == single.content.replace(
        single.json()["decision_id"].encode(), b""
    )
    assert "shadow" not in single_s.text
    assert sqlite_log.get(single.json()["decision_id"])["shadow"] is None
    assert sqlite_log.get(single_s.json()["decision_id"])["shadow"]["model_version"] == "challenger-1"


@pytest.mark.parametrize("amount_type", [None, TensorProto.DOUBLE], ids=["shared feed", "own feed"])
def test_the_record_carries_the_shadow_score_equal_to_scoring_it_directly(
    versioned: Any, settings: Settings, sqlite_log: Any, tmp_path: Path, amount_type: int | None
) -> None:
    registry.publish(versioned, BUCKET, BUNDLED, by="test", reason="first champion")
    ref, challenger = registry.store_dir(
        versioned, BUCKET, challenger_dir(tmp_path, "challenger-x", amount_graph(amount_type=amount_type))
    )
    shadow.set_shadow(versioned, BUCKET, ref, by="t", reason="r")
    app, store = shadowed_app(settings, versioned, sqlite_log)
    assert (store.shadow.scorer.input_types == store.current().scorer.input_types) is (amount_type is None)
    rows = applicants()
    results = TestClient(app).post("/predict/batch", json={"applicants": rows}).json()["results"]
    expected = assess(challenger, rows)
    recorded = [sqlite_log.get(r["decision_id"]) for r in results]
    assert [r["shadow"] for r in recorded] == [
        {
            "model_version": "challenger-x",
            "probability_of_default": e["probability_of_default"],
            "decision": e["decision"],
        }
        for e in expected
    ]
    champion = assess(store.current(), rows)
    assert [r["probability_of_default"] for r in recorded] == [c["probability_of_default"] for c in champion]
    decisions = {e["decision"] for e in expected}
    assert len(decisions) > 1 and [e["decision"] for e in expected] != [c["decision"] for c in champion]


class FailingScorer:
    """A shadow whose run fails as onnxruntime can fail (after it loaded fine)."""

    def __init__(self, real: Any) -> None:
        self.input_types = real.input_types

    def run(self, feed: Any) -> np.ndarray:
        raise RuntimeError("onnxruntime: bad allocation")


@pytest.mark.parametrize("failure", ["raises", "nan"])
def test_a_shadow_failure_never_fails_the_request(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any, stdout: Any, failure: str
) -> None:
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    app, store = shadowed_app(settings, versioned, sqlite_log)
    real = store.shadow
    if failure == "raises":
        store.shadow = replace(real, scorer=FailingScorer(real.scorer))
    else:
        nan = type(
            "NanScorer", (FailingScorer,), {"run": lambda self, feed: np.full(len(feed["amount"]), np.nan)}
        )
        store.shadow = replace(real, scorer=nan(real.scorer))
    client = TestClient(app)
    single = client.post("/predict", json=EXAMPLE_APPLICANT)
    batch = client.post("/predict/batch", json={"applicants": applicants(5)})
    assert single.status_code == 200 and batch.status_code == 200
    assert sqlite_log.get(single.json()["decision_id"])["shadow"] is None
    metrics.flush_metrics()
    assert sum(metric_values(emf_records(stdout()), "ShadowScoringFailures")) == 2.0


def test_a_shadow_that_became_champion_is_not_scored_against_itself(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any
) -> None:
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    registry.promote(versioned, BUCKET, stored["challenger"], by="t", reason="it won")
    app, store = shadowed_app(settings, versioned, sqlite_log)
    assert store.shadow is not None and store.current().sha256 == store.shadow.sha256
    answer = TestClient(app).post("/predict", json=EXAMPLE_APPLICANT).json()
    assert answer["model_version"] == "challenger-1"
    assert sqlite_log.get(answer["decision_id"])["shadow"] is None


def test_dynamodb_records_carry_the_shadow_too(
    versioned: Any, stored: dict, settings: Settings, dynamodb: Any
) -> None:
    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    log = DynamoDecisionLog(TABLE, client=dynamodb, idempotency_table=IDEMPOTENCY)
    app, store = shadowed_app(settings, versioned, log)
    client = TestClient(app)
    single = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    results = client.post("/predict/batch", json={"applicants": applicants(30)}).json()["results"]
    expected = underwriting.shadow_score(
        store.shadow, store.current(), store.current().scorer.feed(applicants(30)), applicants(30)
    )
    assert [log.get(r["decision_id"])["shadow"] for r in results] == expected
    recorded = log.get(single["decision_id"])["shadow"]
    assert recorded["model_version"] == "challenger-1" and recorded["decision"] in shadow.DECISIONS
    store.shadow = None
    plain = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    item = dynamodb.get_item(TableName=TABLE, Key={"decision_id": {"S": plain["decision_id"]}})["Item"]
    assert "shadow" not in item and log.get(plain["decision_id"])["shadow"] is None


def test_reading_a_record_back_shows_the_shadow_to_the_risk_team_only(
    versioned: Any, stored: dict, settings: Settings, sqlite_log: Any
) -> None:
    from credit_api.service import Call, DecisionService

    shadow.set_shadow(versioned, BUCKET, stored["challenger"], by="t", reason="r")
    _, store = shadowed_app(settings, versioned, sqlite_log)
    service = DecisionService(store, sqlite_log, readers={"risk-key"})
    answer, _ = service.predict(EXAMPLE_APPLICANT, Call(request_id="r1", caller="lender-key"))
    assert "shadow" not in answer
    assert "shadow" not in service.decision(answer["decision_id"], "lender-key")
    assert service.decision(answer["decision_id"], "risk-key")["shadow"]["model_version"] == "challenger-1"
    observed = datetime(2026, 11, 30, tzinfo=UTC)
    assert "shadow" not in service.record_outcome(answer["decision_id"], False, observed, "lender-key")
