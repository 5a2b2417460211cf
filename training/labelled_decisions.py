"""The decisions with a recorded outcome, read incrementally: the retrain's and the monitor's training rows.

Outcomes arrive months after their decisions, for decisions of any age up to the retention
(``DECISION_RETENTION_DAYS``). Read by decision day, the labelled decisions are in every
partition of the table, so each run would read the whole table (the Scan this replaces read,
and was billed for, every item, to keep the few with an outcome). Read by the time their outcome
was *recorded* (the sparse ``by-outcome-month`` index, :func:`credit_api.decision_reads.outcomes_recorded`),
the ones that are new since the last run are a range of the latest month's partitions.

So the labelled decisions are kept as a **snapshot** in the model bucket (:data:`SNAPSHOT_KEY`,
gzip JSON: ``{"format", "read_until", "records"}``), and each run:

1. loads it (absent or unreadable: starts empty, and reads the index over the whole retention;
   that first read costs the labelled decisions, still not the table);
2. reads the outcomes recorded since ``read_until`` less :data:`OVERLAP` (the index is
   eventually consistent: an outcome written just before the last read may have reached the
   index after it) and merges them by ``decision_id`` (an outcome is never overwritten, so a
   record read twice is the same record);
3. drops the records past their ``expires_at``: the table's TTL deletes a decision after the
   retention, and the copy must not outlive it;
4. writes the snapshot back, conditional on the ETag it loaded (``IfMatch``; ``IfNoneMatch`` when
   there was none): of two overlapping runs (the retrain and the monitor, a retry) the second
   writer does not overwrite the first; it keeps its own merged records for its run and the next
   run continues from the stored one.

Chosen by measurement over a DynamoDB export to S3 (``bench/labelled_reads.py``, BENCHMARKS.md):
an export reads and bills the whole table each time (a full export; an incremental export still
needs this merge), is asynchronous (minutes), and needs the export permissions and a parser for
its format, whereas the index read costs the new outcomes and one extra index write per outcome.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from credit_api.aws import S3_MISSING_CODES, error_code
from credit_api.decision_log import Record
from credit_api.decision_reads import iso, outcomes_recorded
from credit_api.s3_writes import ObjectChanged, put_if
from credit_api.settings import DECISION_RETENTION_DAYS

SNAPSHOT_KEY = "datasets/labelled-decisions.json.gz"
SNAPSHOT_FORMAT = 1
OVERLAP = timedelta(days=1)
"""Re-read this much before the last read: far more than the index's propagation delay (under a
second, normally), and one day's outcomes is a small read."""


@dataclass
class Snapshot:
    """The labelled decisions by id, up to when the index was read, and the stored object's ETag."""

    records: dict[str, Record] = field(default_factory=dict)
    read_until: datetime | None = None
    etag: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Refresh:
    """One run's labelled decisions and what reading them took, for the run's report and log."""

    records: list[Record]
    read_from: str
    read: int
    added: int
    expired: int
    full_read: bool
    saved: bool
    problem: str | None = None

    def summary(self) -> dict[str, Any]:
        """The report's ``labelled_read`` entry: the counts, without the records."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"records": len(self.records)}


def joined(records: Sequence[Record], labelled: Sequence[Record]) -> list[Record]:
    """``records`` and the labelled decisions not among them: each decision once, with the copy of
    ``records`` where both have it (read from the table, every attribute; the index projects fewer)."""
    read = {r.get("decision_id") for r in records}
    return [*records, *(r for r in labelled if r.get("decision_id") not in read)]


def load(s3: Any, bucket: str) -> Snapshot:
    """The stored snapshot; an empty one when there is none, or it cannot be read (with why).

    Without ``s3:ListBucket`` (the roles do not have it) S3 answers a missing key with 403, not
    404, so a denied read is taken as "none" too, with the reason kept: the save that follows is
    then conditional on there being no object (``IfNoneMatch``), so a snapshot that exists but
    could not be read is never overwritten by this run.
    """
    try:
        answer = s3.get_object(Bucket=bucket, Key=SNAPSHOT_KEY)
    except (ClientError, BotoCoreError) as exc:
        code = error_code(exc)
        return Snapshot() if code in S3_MISSING_CODES else Snapshot(problem=f"snapshot not read ({code})")
    etag = answer.get("ETag")
    try:
        body = json.loads(gzip.decompress(answer["Body"].read()))
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        records = {r["decision_id"]: r for r in body["records"]}
        read_until = datetime.fromisoformat(body["read_until"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Snapshot(etag=etag, problem=f"unreadable snapshot ({type(exc).__name__}: {exc}): read again")
    return Snapshot(records, read_until, etag)


def merged(snapshot: Snapshot, new: Iterable[Record], now: datetime) -> tuple[dict[str, Record], int, int]:
    """The snapshot's records with ``new`` added and the expired dropped; (records, added, expired)."""
    records = dict(snapshot.records)
    before = set(records)
    for record in new:
        records[record["decision_id"]] = record
    added = len(set(records) - before)
    cutoff = now.timestamp()
    expired = [i for i, r in records.items() if _expires(r) <= cutoff]
    for decision_id in expired:
        del records[decision_id]
    return records, added, len(expired)


def _expires(record: Mapping[str, Any]) -> float:
    try:
        return float(record.get("expires_at"))
    except (TypeError, ValueError):
        return float("inf")  # no retention recorded: kept, as the table keeps it


def save(
    s3: Any, bucket: str, snapshot: Snapshot, records: Mapping[str, Record], now: datetime
) -> str | None:
    """Write the snapshot, conditional on the ETag loaded; None when written, else why not.

    Not written is not a failed run: this run has its records, and the next one reads from the
    stored snapshot's ``read_until`` (or, with none, the whole retention) again.
    """
    body = {"format": SNAPSHOT_FORMAT, "read_until": iso(now), "records": list(records.values())}
    data = gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0)
    try:
        options = {"ContentType": "application/json", "ContentEncoding": "gzip"}
        put_if(s3, bucket, SNAPSHOT_KEY, data, snapshot.etag, **options)
    except ObjectChanged:
        return "the snapshot changed since this run loaded it: kept the stored copy"
    except (ClientError, BotoCoreError) as exc:  # S3's answer or no answer; anything else is a bug
        return f"snapshot not written ({error_code(exc)})"
    return None


def refresh(s3: Any, dynamodb: Any, bucket: str, table: str, now: datetime | None = None) -> Refresh:
    """Load, read what is new, merge, prune and save (the module docstring's four steps).

    ``now`` is the wall clock unless a test sets it: outcomes are read up to it and records are
    pruned by it, as the table's TTL does, whatever moment a backdated report describes.
    """
    now = now or datetime.now(UTC)
    snapshot = load(s3, bucket)
    full_read = snapshot.read_until is None
    since = now - timedelta(days=DECISION_RETENTION_DAYS) if full_read else snapshot.read_until - OVERLAP
    new = outcomes_recorded(dynamodb, table, since, now)
    records, added, expired = merged(snapshot, new, now)
    not_saved = save(s3, bucket, snapshot, records, now)
    problems = [p for p in (snapshot.problem, not_saved) if p]
    return Refresh(
        records=sorted(records.values(), key=lambda r: str(r.get("created_at") or "")),
        read_from=iso(since),
        read=len(new),
        added=added,
        expired=expired,
        full_read=full_read,
        saved=not_saved is None,
        problem="; ".join(problems) or None,
    )
