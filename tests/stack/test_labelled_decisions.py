"""The labelled decisions, read incrementally: the snapshot, the outcome index, the retention.

Against moto with the template's table (keys and indexes) and a bucket; tests/stack/test_retrain.py
runs the whole retrain on top of it.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from credit_api.decision_log import DynamoDecisionLog
from credit_api.decision_reads import scan_decisions

from tests.function.test_decision_reads import TABLE, create_table, outcome, records
from tests.stack.aws_calls import recorded_calls
from training import labelled_decisions
from training.labelled_decisions import SNAPSHOT_KEY

BUCKET = "labelled-decisions"


@pytest.fixture
def stores(aws: None) -> tuple[Any, Any, DynamoDecisionLog]:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    dynamodb = create_table()
    return s3, dynamodb, DynamoDecisionLog(TABLE, client=dynamodb)


def _decide(log: DynamoDecisionLog, n: int, age_days: int = 100) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    written = records([now - timedelta(days=age_days, minutes=i) for i in range(n)])
    for record in written:
        record["expires_at"] = int((now + timedelta(days=700)).timestamp())
    log.put_many(written)
    return written


def _label(log: DynamoDecisionLog, decisions: list[dict[str, Any]], at: datetime) -> None:
    for i, record in enumerate(decisions):
        log.record_outcome(record["decision_id"], outcome(at, defaulted=i % 2 == 0))


def _stored(s3: Any) -> dict[str, Any]:
    return json.loads(gzip.decompress(s3.get_object(Bucket=BUCKET, Key=SNAPSHOT_KEY)["Body"].read()))


def test_the_first_run_reads_the_labelled_decisions_and_no_other(stores: tuple[Any, Any, Any]) -> None:
    s3, dynamodb, log = stores
    decided = _decide(log, 30)
    _label(log, decided[:10], datetime.now(UTC) - timedelta(days=40))
    with recorded_calls() as calls:
        first = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    assert {r["decision_id"] for r in first.records} == {r["decision_id"] for r in decided[:10]}
    assert first.full_read and first.saved and first.read == 10 and first.problem is None
    assert all(c.operation != "Scan" for c in calls)  # the index, not the table
    assert {c.params.get("IndexName") for c in calls if c.operation == "Query"} == {"by-outcome-month"}
    assert {r["decision_id"] for r in _stored(s3)["records"]} == {r["decision_id"] for r in decided[:10]}


def test_a_later_run_reads_only_what_was_recorded_since(stores: tuple[Any, Any, Any]) -> None:
    s3, dynamodb, log = stores
    decided = _decide(log, 30)
    _label(log, decided[:10], datetime.now(UTC) - timedelta(days=40))
    labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    _label(log, decided[10:14], datetime.now(UTC))
    with recorded_calls() as calls:
        second = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    assert not second.full_read
    assert second.read == 4 and second.added == 4  # the old ten come from the snapshot
    assert len(second.records) == 14
    queried = {
        c.params["ExpressionAttributeValues"][":part"]["S"][:7] for c in calls if c.operation == "Query"
    }
    assert len(queried) <= 2  # this month (and the last, across a month's end), not the retention's 27
    again = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    assert again.added == 0 and len(again.records) == 14  # a re-read adds nothing twice


def test_records_past_their_retention_leave_the_snapshot(stores: tuple[Any, Any, Any]) -> None:
    s3, dynamodb, log = stores
    decided = _decide(log, 4)
    decided[0]["expires_at"] = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    log.put(decided[0])  # unchanged: a record is never overwritten
    _label(log, decided, datetime.now(UTC))
    labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    later = labelled_decisions.refresh(
        s3, dynamodb, BUCKET, TABLE, now=datetime.now(UTC) + timedelta(days=800)
    )
    assert later.expired == 4 and later.records == []
    assert _stored(s3)["records"] == []


def test_an_unreadable_snapshot_is_rebuilt_from_the_index(stores: tuple[Any, Any, Any]) -> None:
    s3, dynamodb, log = stores
    decided = _decide(log, 5)
    _label(log, decided, datetime.now(UTC) - timedelta(days=3))
    s3.put_object(Bucket=BUCKET, Key=SNAPSHOT_KEY, Body=b"not gzip")
    rebuilt = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    assert rebuilt.full_read and len(rebuilt.records) == 5 and rebuilt.saved
    assert "unreadable snapshot" in rebuilt.problem
    assert len(_stored(s3)["records"]) == 5


def test_a_run_that_loses_the_race_keeps_the_other_runs_snapshot(
    stores: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, dynamodb, log = stores
    decided = _decide(log, 6)
    _label(log, decided[:3], datetime.now(UTC) - timedelta(days=2))
    labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    stale = labelled_decisions.load(s3, BUCKET)
    _label(log, decided[3:], datetime.now(UTC))
    winner = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)  # another run, meanwhile
    monkeypatch.setattr(labelled_decisions, "load", lambda *_: stale)
    loser = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE)
    assert winner.saved and not loser.saved and "changed since this run loaded it" in loser.problem
    assert len(loser.records) == 6  # its own run still has every record
    assert len(_stored(s3)["records"]) == 6


def test_the_full_scan_still_returns_every_record_for_the_operator_commands(
    stores: tuple[Any, Any, Any],
) -> None:
    _, dynamodb, log = stores
    decided = _decide(log, 3)
    _label(log, decided[:1], datetime.now(UTC))
    every = scan_decisions(dynamodb, TABLE)
    assert {r["decision_id"] for r in every} == {r["decision_id"] for r in decided}
    assert all(not {"day_shard", "outcome_shard", "outcome_at"} & set(r) for r in every)


def test_joined_keeps_each_decision_once_with_the_tables_copy() -> None:
    full = {"decision_id": "a", "reasons": ["r"], "outcome": {"defaulted": True}}
    projected = {"decision_id": "a", "outcome": {"defaulted": True}}
    other = {"decision_id": "b", "outcome": {"defaulted": False}}
    assert labelled_decisions.joined([full], [projected, other]) == [full, other]
