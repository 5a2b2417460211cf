"""The day index: every record the DynamoDB log writes is in it, a window reads it page by page
over days and shards, and the backfill puts older records in, once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from credit_api import decision_reads
from credit_api.decision_log import DAY_INDEX, DAY_KEY, DAY_SHARDS, DynamoDecisionLog, day_shard, to_attribute
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
    partitions = {c.params["ExpressionAttributeValues"][":day"]["S"] for c in queries}
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
    assert len(decision_reads.missing_day_key(table, TABLE)) == 2

    assert decision_reads.backfill(table, TABLE) == 2
    assert decision_reads.backfill(table, TABLE) == 0  # safe to repeat
    found = decision_reads.window(table, TABLE, since, NOW)
    assert [r["decision_id"] for r in found] == [
        old[1]["decision_id"],
        old[0]["decision_id"],
        new[0]["decision_id"],
    ]
