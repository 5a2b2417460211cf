"""Decisions by time: the day index of DecisionsTable read over a window, instead of a Scan.

Every record the DynamoDB log writes carries ``day_shard`` = ``YYYY-MM-DD#n``
(:func:`credit_api.decision_log.day_shard`), the partition key of the ``by-day`` global
secondary index, sorted by ``created_at``. :func:`window` reads the decisions created since a
moment: one Query per day and shard (``DAY_SHARDS`` a day), every page, several at once. Its cost
is the window's records, not the table's: the drift window (30 days) of a table holding 800
days reads about 1/27 of what a Scan reads.

**Records older than the index.** Records written before ``day_shard`` existed are not in the
index (a global secondary index holds only items that have its key). Such records can only be
older than the deploy that added it. :func:`backfill`, run once after that deploy (``credit
decisions backfill-day-index``, with an operator's credentials: the functions may not Scan or
write it), gives each of them its key with a conditional update, so it is safe to repeat and to
run while decisions are being made. Chosen over a Scan fallback in every reader: that fallback
would keep the full-table read (and its IAM grant) this index exists to remove, forever, for
records that the retention (800 days) deletes anyway. Until the backfill has run, a window
reaching back before the deploy misses the older records (``credit decisions backfill-day-index
--dry-run`` counts them).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from credit_api.decision_log import (
    DAY_INDEX,
    DAY_KEY,
    DAY_SHARDS,
    Record,
    day_shard,
    from_attribute,
    record_of,
)

READERS = 8
"""Queries in flight at once: a 30-day window is 240 of them, each mostly a round trip."""


def iso(moment: datetime) -> str:
    """``moment`` as records spell ``created_at`` (UTC, milliseconds, ``Z``), so strings compare as times."""
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def days(since: datetime, until: datetime) -> Iterator[date]:
    """Every UTC day from ``since``'s to ``until``'s, both included."""
    day, last = _utc(since).date(), _utc(until).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def partitions(since: datetime, until: datetime) -> list[str]:
    """The index partitions (``day_shard`` values) holding decisions of those days."""
    return [f"{day.isoformat()}#{shard}" for day in days(since, until) for shard in range(DAY_SHARDS)]


def _query(dynamodb: Any, table: str, partition: str, since: str, page_size: int | None) -> list[Record]:
    """One index partition's decisions created at ``since`` or later, every page."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        IndexName=DAY_INDEX,
        KeyConditionExpression="#day = :day AND created_at >= :since",
        ExpressionAttributeNames={"#day": DAY_KEY},
        ExpressionAttributeValues={":day": {"S": partition}, ":since": {"S": since}},
        PaginationConfig={"PageSize": page_size} if page_size else {},
    )
    return [record_of(item) for page in pages for item in page["Items"]]


def window(
    dynamodb: Any, table: str, since: datetime, until: datetime | None = None, page_size: int | None = None
) -> list[Record]:
    """Decisions created from ``since`` to the end of ``until``'s day (default: now), oldest first.

    ``page_size`` caps the items per Query page (DynamoDB's own cap is 1 MB, about 250 records).
    The index is eventually consistent: a decision made in the last second may not be in it yet,
    which a drift window does not notice.
    """
    until = until or datetime.now(UTC)
    start = iso(since)
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="decision-reads") as pool:
        parts = list(
            pool.map(lambda p: _query(dynamodb, table, p, start, page_size), partitions(since, until))
        )
    records = [record for part in parts for record in part]
    records.sort(key=lambda r: str(r.get("created_at") or ""))
    return records


def scan_decisions(dynamodb: Any, table: str) -> list[Record]:
    """Every decision record in the table (a Scan; for readers that need all of them: the
    monitoring report's volumes and outcomes over the whole history, ``credit models``)."""
    records = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        records.extend(
            {k: from_attribute(v) for k, v in item.items() if k != DAY_KEY} for item in page["Items"]
        )
    return records


def missing_day_key(dynamodb: Any, table: str) -> list[dict[str, str]]:
    """``decision_id`` and ``created_at`` of every record without ``day_shard`` (a Scan of the keys)."""
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="attribute_not_exists(#day) AND attribute_exists(created_at)",
        ProjectionExpression="decision_id, created_at",
        ExpressionAttributeNames={"#day": DAY_KEY},
    )
    return [
        {"decision_id": item["decision_id"]["S"], "created_at": item["created_at"]["S"]}
        for page in pages
        for item in page["Items"]
    ]


def backfill(dynamodb: Any, table: str) -> int:
    """Give every record older than the index its ``day_shard``; the number of records updated.

    Each update is conditional on the record existing and still lacking the key, so a repeat,
    or a record deleted (TTL) meanwhile, changes nothing.
    """
    updated = 0
    for key in missing_day_key(dynamodb, table):
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"decision_id": {"S": key["decision_id"]}},
                UpdateExpression="SET #day = :day",
                ConditionExpression="attribute_exists(decision_id) AND attribute_not_exists(#day)",
                ExpressionAttributeNames={"#day": DAY_KEY},
                ExpressionAttributeValues={":day": {"S": day_shard(key["decision_id"], key["created_at"])}},
            )
            updated += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue
    return updated
