"""The time-keyed indexes: every record the DynamoDB log writes is in the day index, every recorded
outcome in the outcome index; reads go page by page over days and shards, and the backfill puts
older records in, once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from credit_api import decision_reads
from credit_api.decision_log import (
    DAY_INDEX,
    DAY_KEY,
    DAY_SHARDS,
    OUTCOME_AT,
    OUTCOME_INDEX,
    OUTCOME_KEY,
    OUTCOME_PROJECTION,
    DynamoDecisionLog,
    day_shard,
    outcome_shard,
    to_attribute,
)
from credit_api.service import random_ids

from infra.template import load
from tests.stack.aws_calls import recorded_calls

TABLE = "decisions-by-day"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def table(aws: None) -> Any:
    return create_table()


def create_table() -> Any:
    """The decisions table with the template's keys and indexes (so this pins the template)."""
    import boto3

    properties = load()["Resources"]["DecisionsTable"]["Properties"]
    client = boto3.client("dynamodb", region_name="eu-west-1")
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        **{k: properties[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
    )
    return client


def records(created: list[datetime]) -> list[dict[str, Any]]:
    return [
        {
            "decision_id": decision_id,
            "created_at": decision_reads.iso(at),
            "decision": "approve",
            "inputs": {"age": 30},
            "outcome": None,
        }
        for decision_id, at in zip(random_ids(len(created)), created, strict=True)
    ]


def test_a_window_reads_every_page_of_every_day_and_shard_and_nothing_older(table: Any) -> None:
    log = DynamoDecisionLog(TABLE, client=table)
    hours = [NOW - timedelta(minutes=72 * i) for i in range(240)]  # 12 days, 20 a day
    written = records(hours)
    log.put_many(written)
    since = NOW - timedelta(days=5)
    with recorded_calls() as calls:
        found = decision_reads.window(table, TABLE, since, NOW, page_size=2)
    expected = sorted(
        (r for r in written if r["created_at"] >= decision_reads.iso(since)), key=lambda r: r["created_at"]
    )
    assert [r["decision_id"] for r in found] == [r["decision_id"] for r in expected]
    assert all(DAY_KEY not in r for r in found)  # a storage key, not part of the record
    assert found[0]["inputs"] == {"age": 30}  # every attribute is projected
    queries = [c for c in calls if c.operation == "Query"]
    assert {c.params["IndexName"] for c in queries} == {DAY_INDEX}
    partitions = {c.params["ExpressionAttributeValues"][":part"]["S"] for c in queries}
    assert len(partitions) == 6 * DAY_SHARDS  # the first day to the last, every shard
    assert len(queries) > len(partitions)  # pages beyond the first were read
    assert all(c.operation != "Scan" for c in calls)


def test_records_read_back_do_not_show_the_index_key(table: Any) -> None:
    log = DynamoDecisionLog(TABLE, client=table)
    (record,) = records([NOW])
    log.put(record)
    stored = table.get_item(TableName=TABLE, Key={"decision_id": {"S": record["decision_id"]}})["Item"]
    assert stored[DAY_KEY]["S"] == day_shard(record["decision_id"], record["created_at"])
    assert stored[DAY_KEY]["S"].startswith("2026-12-03#")
    assert DAY_KEY not in log.get(record["decision_id"])


def test_shards_spread_a_day_evenly() -> None:
    shards = Counter(day_shard(i, "2026-12-03T00:00:00.000Z") for i in random_ids(8000))
    assert len(shards) == DAY_SHARDS
    assert max(shards.values()) < 1.2 * 8000 / DAY_SHARDS


def legacy_put(client: Any, record: dict[str, Any]) -> None:
    """A record as written before the index: no day_shard."""
    item = {k: to_attribute(v) for k, v in record.items() if v is not None}
    client.put_item(TableName=TABLE, Item=item)


def test_the_backfill_puts_older_records_in_the_index_once(table: Any) -> None:
    old = records([NOW - timedelta(days=1), NOW - timedelta(days=2)])
    for record in old:
        legacy_put(table, record)
    new = records([NOW])
    DynamoDecisionLog(TABLE, client=table).put_many(new)
    since = NOW - timedelta(days=3)
    assert [r["decision_id"] for r in decision_reads.window(table, TABLE, since, NOW)] == [
        new[0]["decision_id"]
    ]
    assert len(decision_reads.missing_index_keys(table, TABLE)) == 2

    assert decision_reads.backfill(table, TABLE) == 2
    assert decision_reads.backfill(table, TABLE) == 0  # safe to repeat
    found = decision_reads.window(table, TABLE, since, NOW)
    assert [r["decision_id"] for r in found] == [
        old[1]["decision_id"],
        old[0]["decision_id"],
        new[0]["decision_id"],
    ]


def outcome(recorded_at: datetime, defaulted: bool = True) -> dict[str, Any]:
    return {
        "defaulted": defaulted,
        "observed_at": "2026-11-30",
        "recorded_at": decision_reads.iso(recorded_at),
    }


def test_a_recorded_outcome_puts_its_decision_in_the_outcome_index(table: Any) -> None:
    log = DynamoDecisionLog(TABLE, client=table)
    labelled, unlabelled = records([NOW - timedelta(days=400), NOW - timedelta(days=2)])
    labelled["reasons"] = [{"input": "age", "label": "Age", "message": "young"}]
    log.put_many([labelled, unlabelled])
    log.record_outcome(labelled["decision_id"], outcome(NOW))
    stored = table.get_item(TableName=TABLE, Key={"decision_id": {"S": labelled["decision_id"]}})["Item"]
    assert stored[OUTCOME_KEY]["S"] == outcome_shard(labelled["decision_id"], decision_reads.iso(NOW))
    assert stored[OUTCOME_KEY]["S"].startswith("2026-12#")
    assert stored[OUTCOME_AT]["S"] == decision_reads.iso(NOW)
    assert not {OUTCOME_KEY, OUTCOME_AT} & set(log.get(labelled["decision_id"]))  # storage keys

    with recorded_calls() as calls:
        found = decision_reads.outcomes_recorded(table, TABLE, NOW - timedelta(days=1), NOW)
    assert [r["decision_id"] for r in found] == [labelled["decision_id"]]  # sparse: only the labelled
    assert found[0]["outcome"]["defaulted"] is True
    assert found[0]["created_at"] == labelled["created_at"]  # by recording day, whatever its age
    assert "reasons" not in {k for k, v in found[0].items() if v is not None}  # not projected
    assert {c.params["IndexName"] for c in calls if c.operation == "Query"} == {OUTCOME_INDEX}
    later = NOW + timedelta(seconds=1)
    assert decision_reads.outcomes_recorded(table, TABLE, later, later) == []  # recorded before


def test_the_outcome_index_projects_what_the_code_reads() -> None:
    (index,) = [
        i
        for i in load()["Resources"]["DecisionsTable"]["Properties"]["GlobalSecondaryIndexes"]
        if i["IndexName"] == OUTCOME_INDEX
    ]
    assert [k["AttributeName"] for k in index["KeySchema"]] == [OUTCOME_KEY, OUTCOME_AT]
    assert index["Projection"]["NonKeyAttributes"] == list(OUTCOME_PROJECTION)


def test_the_backfill_gives_outcomes_recorded_before_the_index_their_keys(table: Any) -> None:
    old = records([NOW - timedelta(days=300)])[0]
    old["outcome"] = outcome(NOW - timedelta(days=10))
    legacy_put(table, old)  # neither index's keys
    indexed = records([NOW - timedelta(days=30)])[0]
    DynamoDecisionLog(TABLE, client=table).put(indexed)
    table.update_item(  # an outcome written before the outcome index: the day key, no outcome keys
        TableName=TABLE,
        Key={"decision_id": {"S": indexed["decision_id"]}},
        UpdateExpression="SET outcome = :o",
        ExpressionAttributeValues={":o": to_attribute(outcome(NOW - timedelta(days=5)))},
    )
    since = NOW - timedelta(days=20)
    assert decision_reads.outcomes_recorded(table, TABLE, since, NOW) == []
    assert len(decision_reads.missing_index_keys(table, TABLE)) == 2

    assert decision_reads.backfill(table, TABLE) == 2
    assert decision_reads.backfill(table, TABLE) == 0
    found = decision_reads.outcomes_recorded(table, TABLE, since, NOW)
    assert [r["decision_id"] for r in found] == [old["decision_id"], indexed["decision_id"]]
    days = decision_reads.window(table, TABLE, NOW - timedelta(days=301), NOW)
    assert {r["decision_id"] for r in days} == {old["decision_id"], indexed["decision_id"]}
