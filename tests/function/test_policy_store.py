"""The policy apart from the model: the document, its store, and the function serving it hot."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.decision_log import SqliteDecisionLog
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.model_store import publish as publish_model
from credit_api.policy import PolicyDocument, ScoreScale, policy_version
from credit_api.policy_store import (
    POLICY_POINTER_KEY,
    PolicyConflict,
    PolicyLoadError,
    ServedPolicy,
    document_key,
    encode,
    fetch,
    history,
    parse_document,
    publish,
    read_pointer,
)
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import Settings
from fastapi.testclient import TestClient

from tests.function.conftest import BUCKET, BUNDLED, s3_store
from tests.support import emf_records, metric_values

MANIFEST = Manifest.model_validate_json((BUNDLED / MANIFEST_FILE).read_bytes())
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def document(by: str = "risk-team", reason: str = "test", **changes: Any) -> PolicyDocument:
    """The bundled model's policy with ``changes``, as a document."""
    return PolicyDocument.create(
        MANIFEST.policy.model_copy(update=changes),
        MANIFEST.score_scale,
        by=by,
        reason=reason,
        published_at=WHEN,
    )


def raw(doc: PolicyDocument, **changes: Any) -> dict[str, Any]:
    return {**json.loads(encode(doc)), **changes}


# --- the document ---------------------------------------------------------------------------


def test_version_is_derived_from_the_numbers_only_and_stable() -> None:
    first, again = document(by="a", reason="x"), document(by="b", reason="y")
    assert first.policy_version == again.policy_version  # who and why do not change the version
    assert first.policy_version == policy_version(MANIFEST.policy, MANIFEST.score_scale)
    assert first.policy_version.startswith("policy-") and len(first.policy_version) == len("policy-") + 12
    assert document(review_band=0.1).policy_version != first.policy_version
    moved_scale = PolicyDocument.create(
        MANIFEST.policy, ScoreScale(base_score=650), by="a", reason="x", published_at=WHEN
    )
    assert moved_scale.policy_version != first.policy_version
    assert parse_document(encode(first)) == first  # the stored bytes read back to the same document
    whole = MANIFEST.policy.model_copy(update={"loss_given_default": 1})
    assert policy_version(whole, MANIFEST.score_scale) == policy_version(
        MANIFEST.policy.model_copy(update={"loss_given_default": 1.0}), MANIFEST.score_scale
    )  # 1 and 1.0 are one number


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policy_version": "policy-000000000000"}, "does not match its content"),
        ({"policy_version": "v1"}, "policy_version"),
        (
            {"policy": {**MANIFEST.policy.model_dump(), "population_default_rate": 1.2}},
            "population_default_rate",
        ),
        ({"policy": {**MANIFEST.policy.model_dump(), "annual_margin": 0}}, "annual_margin"),
        ({"policy": {**MANIFEST.policy.model_dump(), "review_band": 1.0}}, "review_band"),
        ({"policy": {**MANIFEST.policy.model_dump(), "sample_default_rate": -0.1}}, "sample_default_rate"),
        ({"policy": {**MANIFEST.policy.model_dump(), "cutoff": 0.2}}, "cutoff"),
        ({"score_scale": {"base_odds": 0}}, "base_odds"),
        ({"by": ""}, "by"),
        ({"reason": ""}, "reason"),
        ({"approved": True}, "approved"),
        ({"policy": {**MANIFEST.policy.model_dump(), "annual_margin": "0.05"}}, "annual_margin"),
        ({"policy": {**MANIFEST.policy.model_dump(), "annual_applications": True}}, "annual_applications"),
    ],
)
def test_a_bad_document_is_refused_with_the_field_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyLoadError, match=message):
        parse_document(json.dumps(raw(document(), **changes)))


def test_non_finite_numbers_are_refused() -> None:
    text = encode(document()).decode().replace('"base_score": 600.0', '"base_score": NaN')
    with pytest.raises(PolicyLoadError, match="base_score"):
        parse_document(text)


# --- the store ------------------------------------------------------------------------------


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3


def test_publish_writes_the_document_then_switches_the_pointer(bucket: Any) -> None:
    assert read_pointer(bucket, BUCKET) is None
    doc = document(review_band=0.1)
    pointer = publish(bucket, BUCKET, doc, None)
    stored = bucket.get_object(Bucket=BUCKET, Key=document_key(doc.policy_version))["Body"].read()
    assert parse_document(stored) == doc
    assert read_pointer(bucket, BUCKET).data == pointer  # type: ignore[union-attr]
    assert pointer["previous"] is None and pointer["by"] == "risk-team"


def test_two_setters_from_the_same_pointer_one_wins_the_other_gets_a_conflict(bucket: Any) -> None:
    start = read_pointer(bucket, BUCKET)
    publish(bucket, BUCKET, document(review_band=0.1, reason="first"), start)
    with pytest.raises(PolicyConflict, match="changed by someone else"):
        publish(bucket, BUCKET, document(review_band=0.3, reason="second"), start)
    served = read_pointer(bucket, BUCKET)
    assert served is not None and served.data["reason"] == "first"

    # the same race from an existing pointer, with threads
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def setter(band: float) -> None:
        doc = document(review_band=band, reason=f"band {band}")
        barrier.wait()
        try:
            publish(bucket, BUCKET, doc, served)
            outcomes.append("won")
        except PolicyConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=setter, args=(band,)) for band in (0.05, 0.15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "won"]
    assert read_pointer(bucket, BUCKET).data["previous"] == served.data["policy_version"]  # type: ignore[union-attr]


def test_republishing_a_policy_reuses_its_document_and_the_history_keeps_every_switch(bucket: Any) -> None:
    first, second = document(reason="one"), document(review_band=0.1, reason="two")
    publish(bucket, BUCKET, first, read_pointer(bucket, BUCKET))
    publish(bucket, BUCKET, second, read_pointer(bucket, BUCKET))
    back = document(by="ops", reason="back")  # first's numbers again
    publish(bucket, BUCKET, back, read_pointer(bucket, BUCKET))
    stored = bucket.get_object(Bucket=BUCKET, Key=document_key(first.policy_version))["Body"].read()
    assert parse_document(stored).reason == "one"  # immutable: written once
    entries = history(bucket, BUCKET)
    assert [e["policy_version"] for e in entries] == [
        first.policy_version,
        second.policy_version,
        first.policy_version,
    ]
    assert [e["reason"] for e in entries] == ["back", "two", "one"]
    assert entries[0]["previous"] == second.policy_version


class Denied:
    """S3 as the function's role sees a missing key without s3:ListBucket: 403 for everything."""

    def get_object(self, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject")


def test_a_403_means_no_pointer_only_while_no_published_policy_is_in_force() -> None:
    first = fetch(Denied(), BUCKET, None)
    assert first.error is None and first.served is None and not first.unchanged  # the manifest's
    later = fetch(Denied(), BUCKET, ("policy-0123456789ab", "policies/policy-0123456789ab.json", "0" * 64))
    assert later.error is not None and "AccessDenied" in str(later.error)  # the one in force stays


# --- the function serving it ----------------------------------------------------------------


def _app(settings: Settings, s3: Any) -> tuple[TestClient, Any]:
    store = s3_store(settings, s3, model_refresh_seconds=0)
    app = create_app(
        replace(settings, model_bucket=BUCKET), store=store, log=SqliteDecisionLog(settings.decisions_db)
    )
    return TestClient(app), store


def test_without_a_published_policy_the_manifest_policy_is_served(s3: Any, settings: Settings) -> None:
    publish_model(s3, BUCKET, BUNDLED)
    client, _ = _app(settings, s3)
    answer = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    expected = ServedPolicy.of_manifest(MANIFEST)
    assert answer["policy_version"] == expected.version
    health = client.get("/health").json()
    assert health["policy_version"] == expected.version
    assert health["policy_source"] == f"manifest:{MANIFEST.model_version}"
    assert health["status"] == "ok"


def test_a_published_policy_is_served_after_the_refresh_and_recorded(
    s3: Any, settings: Settings, stdout: Any
) -> None:
    publish_model(s3, BUCKET, BUNDLED)
    client, store = _app(settings, s3)
    before = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    assert before["decision"] != "decline"

    # a population default rate near 1 declines every applicant: the decisions show which policy is used
    strict = document(population_default_rate=0.99, reason="decline all")
    publish(s3, BUCKET, strict, read_pointer(s3, BUCKET))
    store.settle()
    client.post("/predict", json=EXAMPLE_APPLICANT)  # starts the refresh (interval 0)
    store.settle()
    after = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    assert after["policy_version"] == strict.policy_version
    assert after["decision"] == "decline"
    assert after["model_version"] == before["model_version"]
    record = client.get(f"/decisions/{after['decision_id']}").json()
    assert record["policy_version"] == strict.policy_version
    batch = client.post("/predict/batch", json={"applicants": [EXAMPLE_APPLICANT] * 3}).json()["results"]
    assert {r["policy_version"] for r in batch} == {strict.policy_version}
    health = client.get("/health").json()
    assert health["policy_source"] == f"s3://{BUCKET}/{document_key(strict.policy_version)}"
    card = client.get("/model").json()  # the model card describes the policy in force
    assert card["policy_version"] == strict.policy_version
    assert card["policy"]["population_default_rate"] == 0.99
    assert sum(metric_values(emf_records(stdout()), "PolicySwaps")) >= 1


@pytest.mark.parametrize("damage", ["bytes", "schema", "missing"])
def test_a_bad_policy_is_refused_and_the_old_one_keeps_serving(
    s3: Any, settings: Settings, stdout: Any, damage: str
) -> None:
    publish_model(s3, BUCKET, BUNDLED)
    good = document(review_band=0.1, reason="good")
    publish(s3, BUCKET, good, None)
    client, store = _app(settings, s3)
    assert client.post("/predict", json=EXAMPLE_APPLICANT).json()["policy_version"] == good.policy_version

    bad = document(review_band=0.3, reason="bad")
    pointer = publish(s3, BUCKET, bad, read_pointer(s3, BUCKET))
    key = pointer["key"]
    if damage == "bytes":  # the document changed after the pointer was written
        s3.put_object(Bucket=BUCKET, Key=key, Body=encode(bad).replace(b"0.3", b"0.9"))
    elif damage == "schema":  # a document that is not a valid policy, with a matching pointer
        body = json.dumps(raw(bad, policy={**bad.policy.model_dump(), "review_band": 2.0})).encode()
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        import hashlib

        fixed = {**pointer, "sha256": hashlib.sha256(body).hexdigest()}
        s3.put_object(Bucket=BUCKET, Key=POLICY_POINTER_KEY, Body=json.dumps(fixed).encode())
    else:
        s3.delete_object(Bucket=BUCKET, Key=key)
    store.settle()
    client.post("/predict", json=EXAMPLE_APPLICANT)
    store.settle()
    answer = client.post("/predict", json=EXAMPLE_APPLICANT).json()
    assert answer["policy_version"] == good.policy_version
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["last_policy_error"]
    assert health["policy_version"] == good.policy_version
    assert sum(metric_values(emf_records(stdout()), "PolicyRefreshFailures")) >= 1
