"""Decisions by time: the table's two time-keyed indexes read over a window, instead of a Scan.

Every record the DynamoDB log writes carries ``day_shard`` = ``YYYY-MM-DD#n``
(:func:`credit_api.decision_log.day_shard`), the partition key of the ``by-day`` global
secondary index, sorted by ``created_at``. :func:`window` reads the decisions created since a
moment: one Query per day and shard (``DAY_SHARDS`` a day), every page, several at once. Its cost
is the window's records, not the table's: the drift window (30 days) of a table holding 800
days reads about 1/27 of what a Scan reads.

A decision whose outcome is recorded also gets ``outcome_shard`` (``YYYY-MM#n``: the recording's
month and shard) and ``outcome_at``, the keys of the sparse ``by-outcome-month`` index: it holds
only the decisions with an outcome. :func:`outcomes_recorded` reads the outcomes recorded since a
moment the same way, a query per month and shard for the range of ``outcome_at`` since then.
That is what lets the retrain read its training rows incrementally
(:mod:`training.labelled_decisions`): outcomes arrive months after their decisions, for
decisions of any age, so by decision day they are in every partition of the table, but by
recording time the ones new since the last run are a range of the last month's partitions.

**Records older than an index.** Records written before ``day_shard`` existed, and outcomes
recorded before ``outcome_shard`` did, are not in the index (a global secondary index holds
only items that have its key). :func:`backfill`, run once after the deploy that adds an index
(``credit decisions backfill-indexes``, with an operator's credentials: the functions may not
Scan or write it), gives each of them its keys with a conditional update, so it is safe to
repeat and to run while decisions are being made. Chosen over a Scan fallback in every reader:
that fallback would keep the full-table read (and its IAM grant) the indexes exist to remove,
forever. Until the backfill has run, a read reaching back before the deploy misses the older
records (``credit decisions backfill-indexes --dry-run`` counts them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from credit_api.decision_log import (
    DAY_INDEX,
    DAY_KEY,
    DAY_SHARDS,
    OUTCOME_AT,
    OUTCOME_INDEX,
    OUTCOME_KEY,
    STORAGE_KEYS,
    Record,
    day_shard,
    from_attribute,
    outcome_keys,
    record_of,
)

READERS = 8
"""Queries in flight at once: a 30-day window is 240 of them, each mostly a round trip."""


@dataclass(frozen=True)
class Index:
    """A time-keyed index: its name, the ``<period>#n`` partition key and the ISO time sort key."""

    name: str
    partition_key: str
    sort_key: str
    period: str


BY_DAY = Index(DAY_INDEX, DAY_KEY, "created_at", "day")
BY_OUTCOME_MONTH = Index(OUTCOME_INDEX, OUTCOME_KEY, OUTCOME_AT, "month")


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


def months(since: datetime, until: datetime) -> list[str]:
    """Every UTC month (``YYYY-MM``) from ``since``'s to ``until``'s, both included."""
    return list(dict.fromkeys(day.isoformat()[:7] for day in days(since, until)))


def partitions(since: datetime, until: datetime, period: str = "day") -> list[str]:
    """The index partitions of those days (``day_shard``) or months (``outcome_shard``)."""
    periods = months(since, until) if period == "month" else [day.isoformat() for day in days(since, until)]
    return [f"{p}#{shard}" for p in periods for shard in range(DAY_SHARDS)]


def _query(
    dynamodb: Any, table: str, index: Index, partition: str, since: str, page_size: int | None
) -> list[Record]:
    """One index partition's records sorted at ``since`` or later, every page."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        IndexName=index.name,
        KeyConditionExpression="#part = :part AND #sort >= :since",
        ExpressionAttributeNames={"#part": index.partition_key, "#sort": index.sort_key},
        ExpressionAttributeValues={":part": {"S": partition}, ":since": {"S": since}},
        PaginationConfig={"PageSize": page_size} if page_size else {},
    )
    return [record_of(item) for page in pages for item in page["Items"]]


def _read(
    dynamodb: Any, table: str, index: Index, since: datetime, until: datetime | None, page_size: int | None
) -> list[Record]:
    """The records of ``index`` sorted from ``since`` to the end of ``until``'s period, 8 queries at once."""
    until = until or datetime.now(UTC)
    start = iso(since)
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="decision-reads") as pool:
        parts = list(
            pool.map(
                lambda p: _query(dynamodb, table, index, p, start, page_size),
                partitions(since, until, index.period),
            )
        )
    return [record for part in parts for record in part]


def window(
    dynamodb: Any, table: str, since: datetime, until: datetime | None = None, page_size: int | None = None
) -> list[Record]:
    """Decisions created from ``since`` to the end of ``until``'s day (default: now), oldest first.

    ``page_size`` caps the items per Query page (DynamoDB's own cap is 1 MB, about 250 records).
    The index is eventually consistent: a decision made in the last second may not be in it yet,
    which a drift window does not notice.
    """
    records = _read(dynamodb, table, BY_DAY, since, until, page_size)
    records.sort(key=lambda r: str(r.get("created_at") or ""))
    return records


def outcomes_recorded(
    dynamodb: Any, table: str, since: datetime, until: datetime | None = None, page_size: int | None = None
) -> list[Record]:
    """Decisions whose outcome was recorded from ``since`` to the end of ``until``'s month, in that order.

    Records hold the attributes the outcome index projects (``OUTCOME_PROJECTION``), not the
    reasons. Eventually consistent like :func:`window`: a reader that continues from where it
    stopped re-reads a margin (:mod:`training.labelled_decisions` does).
    """
    records = _read(dynamodb, table, BY_OUTCOME_MONTH, since, until, page_size)
    records.sort(key=lambda r: str((r.get("outcome") or {}).get("recorded_at") or ""))
    return records


def scan_decisions(dynamodb: Any, table: str) -> list[Record]:
    """Every decision record in the table (a Scan; for readers that need all of them: the
    monitoring report's volumes and outcomes over the whole history, ``credit models``)."""
    records = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        records.extend(
            {k: from_attribute(v) for k, v in item.items() if k not in STORAGE_KEYS} for item in page["Items"]
        )
    return records


def missing_index_keys(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every record lacking an index key it should have: no ``day_shard``, or an outcome
    without ``outcome_shard`` (a Scan of the keys and the outcome's time)."""
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression=(
            "attribute_exists(created_at) AND (attribute_not_exists(#day)"
            " OR (attribute_exists(outcome) AND attribute_not_exists(#shard)))"
        ),
        ProjectionExpression="decision_id, created_at, outcome.recorded_at, #day, #shard",
        ExpressionAttributeNames={"#day": DAY_KEY, "#shard": OUTCOME_KEY},
    )
    return [
        {
            "decision_id": item["decision_id"]["S"],
            "created_at": item["created_at"]["S"],
            "day": DAY_KEY not in item,
            "outcome_recorded_at": item.get("outcome", {}).get("M", {}).get("recorded_at", {}).get("S")
            if OUTCOME_KEY not in item
            else None,
        }
        for page in pages
        for item in page["Items"]
    ]


def _index_update(key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The conditional UpdateItem arguments giving one record its missing index keys (None: none missing).

    The condition is that the record exists and still lacks the keys set, so a repeat, an
    outcome recorded meanwhile (it brings its own keys) or a record deleted (TTL) meanwhile
    changes nothing.
    """
    sets, conditions, names, values = [], ["attribute_exists(decision_id)"], {}, {}
    if key["day"]:
        sets.append("#day = :day")
        conditions.append("attribute_not_exists(#day)")
        names["#day"] = DAY_KEY
        values[":day"] = {"S": day_shard(key["decision_id"], key["created_at"])}
    if key["outcome_recorded_at"]:
        keys = outcome_keys(key["decision_id"], key["outcome_recorded_at"])
        sets += ["#shard = :shard", "#at = :at"]
        conditions.append("attribute_not_exists(#shard)")
        names |= {"#shard": OUTCOME_KEY, "#at": OUTCOME_AT}
        values |= {":shard": keys[OUTCOME_KEY], ":at": keys[OUTCOME_AT]}
    if not sets:
        return None
    return {
        "Key": {"decision_id": {"S": key["decision_id"]}},
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def backfill(dynamodb: Any, table: str) -> int:
    """Give every record older than an index its keys (:func:`_index_update`); the number updated."""
    updated = 0
    for key in missing_index_keys(dynamodb, table):
        update = _index_update(key)
        if update is None:
            continue
        try:
            dynamodb.update_item(TableName=table, **update)
            updated += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue
    return updated
