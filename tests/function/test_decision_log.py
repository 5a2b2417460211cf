"""The decision log: one contract, two stores (SQLite locally, DynamoDB through moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from credit_api.decision_log import (
    DecisionLog,
    DynamoDecisionLog,
    SqliteDecisionLog,
    from_attribute,
    open_log,
    to_attribute,
)
from credit_api.errors import DecisionLogUnavailable, NotFound, OutcomeConflict
from credit_api.schema import EXAMPLE_APPLICANT

from tests.function.conftest import TABLE


def record(**changes: Any) -> dict[str, Any]:
    base = {
        "decision_id": str(uuid.uuid4()),
        "created_at": "2026-11-30T17:00:00.000Z",
        "model_version": "m-1",
        "policy_version": "policy-0123456789ab",
        "request_id": "req-1",
        "idempotency_key": None,
        "request_hash": None,
        "inputs": dict(EXAMPLE_APPLICANT),
        "probability_of_default": 0.123456,
        "decision": "review",
        "score": 571,
        "risk_grade": "C",
        "expected_profit": -12.5,
        "reasons": [{"input": "age", "label": "Age", "message": "Age of applicant (24)"}],
        "outcome": None,
        "shadow": None,
    }
    return {**base, **changes}


@pytest.fixture(params=["sqlite", "dynamodb"])
def log(request: pytest.FixtureRequest, tmp_path) -> Iterator[DecisionLog]:
    if request.param == "sqlite":
        store = SqliteDecisionLog(tmp_path / "log.sqlite3")
        yield store
        store.close()
    else:
        yield DynamoDecisionLog(TABLE, client=request.getfixturevalue("dynamodb"))


OUTCOME = {"defaulted": True, "observed_at": "2027-06-30T00:00:00Z", "recorded_at": "2027-07-01T00:00:00Z"}


def test_put_then_get_round_trips_every_field(log: DecisionLog) -> None:
    written = record()
    stored, created = log.put(written)
    assert created and stored == written
    assert log.get(written["decision_id"]) == written


def test_put_never_overwrites_an_existing_record(log: DecisionLog) -> None:
    first = record()
    log.put(first)
    stored, created = log.put({**first, "decision": "approve", "score": 640})
    assert not created
    assert stored == first
    assert log.get(first["decision_id"]) == first


def test_put_many_and_get_many(log: DecisionLog) -> None:
    records = [record(score=500 + i) for i in range(60)]  # more than one DynamoDB batch (25)
    log.put_many(records)
    found = log.get_many([r["decision_id"] for r in records] + ["missing"])
    assert found == {r["decision_id"]: r for r in records}


def test_outcome_is_recorded_once(log: DecisionLog) -> None:
    written = record()
    log.put(written)
    updated = log.record_outcome(written["decision_id"], OUTCOME)
    assert updated["outcome"] == OUTCOME
    assert log.get(written["decision_id"])["outcome"] == OUTCOME
    again = log.record_outcome(written["decision_id"], {**OUTCOME, "recorded_at": "2027-08-01T00:00:00Z"})
    assert again["outcome"] == OUTCOME  # the same report again changes nothing
    with pytest.raises(OutcomeConflict):
        log.record_outcome(written["decision_id"], {**OUTCOME, "defaulted": False})
    assert log.get(written["decision_id"])["outcome"] == OUTCOME


def test_outcome_for_unknown_decision(log: DecisionLog) -> None:
    with pytest.raises(NotFound):
        log.record_outcome("nope", OUTCOME)
    assert log.get("nope") is None


def test_dynamodb_failure_is_unavailable_not_a_crash(aws: None) -> None:
    log = DynamoDecisionLog("table-that-does-not-exist", client=__import__("boto3").client("dynamodb"))
    with pytest.raises(DecisionLogUnavailable):
        log.put(record())
    with pytest.raises(DecisionLogUnavailable):
        log.put_many([record()])
    with pytest.raises(DecisionLogUnavailable):
        log.get("x")


def test_unprocessed_batch_items_are_retried_then_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    class Throttled:
        calls = 0

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            return {"UnprocessedItems": RequestItems}

    monkeypatch.setattr("credit_api.decision_log.time.sleep", lambda s: None)
    client = Throttled()
    with pytest.raises(DecisionLogUnavailable):
        DynamoDecisionLog(TABLE, client=client).put_many([record()])
    assert client.calls == DynamoDecisionLog.ATTEMPTS


def test_sqlite_failure_is_unavailable(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = SqliteDecisionLog(blocker / "cannot" / "be.sqlite3")
    with pytest.raises(DecisionLogUnavailable):
        log.put(record())


def test_attribute_values_round_trip() -> None:
    value = {"a": 1, "b": 0.1, "c": 1e-07, "d": [True, None, "x"], "e": {"f": -2.5}}
    assert from_attribute(to_attribute(value)) == value


def test_open_log_picks_the_store(tmp_path) -> None:
    assert open_log(None, tmp_path / "x.sqlite3").kind == "sqlite"
    assert open_log("table", tmp_path / "x.sqlite3").kind == "dynamodb"


def test_one_failed_chunk_fails_the_whole_batch(dynamodb: Any) -> None:
    class SecondChunkFails:
        def __init__(self) -> None:
            self.calls = 0

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 2:
                from botocore.exceptions import ClientError

                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchWriteItem"
                )
            return dynamodb.batch_write_item(RequestItems=RequestItems)

    log = DynamoDecisionLog(TABLE, client=SecondChunkFails())
    with pytest.raises(DecisionLogUnavailable):
        log.put_many([record() for _ in range(100)])
