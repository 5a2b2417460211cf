"""What the retrain reads from the decisions table: labelled and shadowed records by Scan, the
drift window by the day index (tests/stack/test_retrain.py runs the whole retrain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from credit_api.decision_log import DAY_KEY, DynamoDecisionLog
from credit_api.decision_reads import scan_decisions

from tests.function.test_decision_reads import TABLE, create_table, records
from training import retrain

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _table(aws: None) -> tuple[Any, list[dict[str, Any]]]:
    client = create_table()
    written = records([NOW - timedelta(days=i) for i in range(3)])
    written[0]["outcome"] = {"defaulted": True, "observed_at": "2027-01-01T00:00:00Z", "recorded_at": "x"}
    written[1]["shadow"] = {"model_version": "s", "probability_of_default": 0.1, "decision": "approve"}
    DynamoDecisionLog(TABLE, client=client).put_many(written)
    return client, written


def test_the_training_scan_keeps_only_labelled_or_shadowed_records(aws: None) -> None:
    client, written = _table(aws)
    kept = {r["decision_id"]: r for r in retrain.scan_outcomes(client, TABLE)}
    assert set(kept) == {written[0]["decision_id"], written[1]["decision_id"]}
    assert kept[written[0]["decision_id"]]["outcome"]["defaulted"] is True
    assert all(DAY_KEY not in r for r in kept.values())


def test_the_full_scan_still_returns_every_record(aws: None) -> None:
    client, written = _table(aws)
    every = scan_decisions(client, TABLE)
    assert {r["decision_id"] for r in every} == {r["decision_id"] for r in written}
    assert all(DAY_KEY not in r for r in every)
