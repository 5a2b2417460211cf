"""The record of every credit decision: one interface, two stores.

DynamoDB (``DECISIONS_TABLE``, partition key ``decision_id`` of type S) when deployed; a
SQLite file (``DECISIONS_DB``) for local runs. A decision is returned to the caller only
after its record is written; any store failure raises
:class:`~credit_api.errors.DecisionLogUnavailable`, which the API answers with a 503.

No record is ever overwritten. ``put`` is a conditional insert (an existing record with the
same id wins and is returned). ``put_many`` writes a batch in DynamoDB batches of 25 (one
SQLite transaction of plain INSERTs locally): BatchWriteItem cannot be conditional, so it is
only ever given fresh random (version 4) ids, which cannot collide; SQLite refuses a duplicate
id and fails the whole batch. Outcomes are stored on the decision record and never
overwritten by a different outcome.

In DynamoDB each decision item also carries ``day_shard`` (``YYYY-MM-DD#n``), the partition key
of the table's ``by-day`` index (:data:`DAY_INDEX`, read by :mod:`credit_api.decision_reads`),
and once its outcome is recorded ``outcome_shard`` (the recording's month and a shard,
``YYYY-MM#n``) and ``outcome_at``, the keys of the sparse ``by-outcome-month`` index
(:data:`OUTCOME_INDEX`): only decisions with an outcome are in it. Storage keys, added on
write and left out on read.

Idempotency rests on claims, not on ids: the first request with a key writes a claim
atomically (DynamoDB: a conditional PutItem on ``IDEMPOTENCY_TABLE``, partition key
``idempotency_id``; SQLite: the ``claims`` table of the same file), and every other request
with that key reads it. A claim::

    {"idempotency_id", "request_hash", "status": "in_progress"|"complete"|"released",
     "decision_ids": [...], "caller", "token", "started_at" (epoch s), "expires_at" (epoch s)}

``token`` is the claiming request's own: completing, releasing (after a failed write) or
taking over a claim is a write conditional on it, so two requests can never both own one.
A claim past ``expires_at`` counts as absent (DynamoDB's TTL deletes it some time later).

A record, as stored and as returned by ``GET /decisions/{id}`` to its caller::

    {"decision_id", "created_at", "model_version", "policy_version" (the decision policy in force,
     policy-<sha12>; absent, read as None, in records older than versioned policies),
     "request_id", "idempotency_key"|None,
     "request_hash"|None (sha256 of the request, with an idempotency key),
     "caller" (API key id that made it; "" locally), "expires_at" (epoch s: created_at plus
     the retention, DynamoDB's TTL attribute; local SQLite files are not pruned),
     "inputs": {16 inputs}, "probability_of_default", "decision", "score", "risk_grade",
     "expected_profit", "reasons": [{"input", "label", "message"}],
     "outcome": None | {"defaulted", "observed_at", "recorded_at"},
     "shadow": None | {"model_version", "probability_of_default", "decision"} (the shadow
     challenger's score, :mod:`credit_api.shadow`; never part of the answer)}
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from pydantic_core import to_json

from credit_api.aws import carry, error_code, is_conditional_failure
from credit_api.errors import DecisionLogUnavailable, NotFound, OutcomeConflict
from credit_api.observability import logger

Record = dict[str, Any]
Claim = dict[str, Any]
OPTIONAL_FIELDS = ("idempotency_key", "request_hash", "outcome", "policy_version", "shadow")
"""Fields that may be None: DynamoDB stores them only when set; older records lack policy_version."""


def same_outcome(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two outcome reports agree when they say the same thing about the same date."""
    return a.get("defaulted") == b.get("defaulted") and a.get("observed_at") == b.get("observed_at")


class DecisionLog(Protocol):
    kind: str

    def put(self, record: Record) -> tuple[Record, bool]:
        """Insert unless the id exists; (stored record, whether this call created it)."""

    def put_many(self, records: Sequence[Record]) -> None:
        """Write records whose ids are new or deterministic (idempotent retries)."""

    def get(self, decision_id: str) -> Record | None: ...

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Record]: ...

    def record_outcome(self, decision_id: str, outcome: dict[str, Any]) -> Record:
        """Attach an outcome; NotFound for an unknown id, OutcomeConflict for a different one."""

    def claim(self, claim: Claim) -> Claim | None:
        """Write ``claim`` unless a live one has its id: None when written, else the stored claim."""

    def take_over(self, stale: Claim, claim: Claim) -> bool:
        """Replace ``stale`` (still holding its token) with ``claim``; False if someone else did first."""

    def complete(self, claim: Claim) -> None:
        """Mark the claim complete; DecisionLogUnavailable if it is no longer this request's."""

    def release(self, claim: Claim) -> None:
        """Mark the claim released if it is still this request's (its decisions were not all
        recorded): the client's retry takes it over at once instead of waiting for it to go stale."""


class SqliteDecisionLog:
    """A local file; one connection shared by uvicorn's threads behind a lock."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Random decision ids scatter inserts over the key index; a 32 MB page cache (default 2 MB)
            # keeps a batch of 1000 at about 3 ms instead of 5 once the log holds some 50,000 decisions.
            conn.execute("PRAGMA cache_size=-32000")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS decisions ("
                " decision_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, model_version TEXT NOT NULL,"
                " decision TEXT NOT NULL, record TEXT NOT NULL, outcome TEXT)"
            )
            columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
            if "policy_version" not in columns:  # a file from before versioned policies
                conn.execute("ALTER TABLE decisions ADD COLUMN policy_version TEXT")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS claims ("
                " idempotency_id TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at INTEGER NOT NULL,"
                " claim TEXT NOT NULL)"
            )
            self._conn = conn
        return self._conn

    def _run(self, work: Any) -> Any:
        try:
            with self._lock:
                return work(self._db())
        except (sqlite3.Error, OSError) as exc:
            logger.error("decision log failed", extra={"store": self.kind, "error": exc.__class__.__name__})
            raise DecisionLogUnavailable("The decision could not be recorded; no decision was made.") from exc

    @staticmethod
    def _row(record: Record) -> tuple[str, str, str, str | None, str, str]:
        # The record's own "outcome" (None when written) is superseded by the outcome column.
        return (
            record["decision_id"],
            record["created_at"],
            record["model_version"],
            record.get("policy_version"),
            record["decision"],
            to_json(record).decode(),
        )

    @staticmethod
    def _load(record: str, outcome: str | None) -> Record:
        loaded = json.loads(record)
        loaded["outcome"] = json.loads(outcome) if outcome else None
        loaded.setdefault("policy_version", None)
        return loaded

    def put(self, record: Record) -> tuple[Record, bool]:
        def work(db: sqlite3.Connection) -> tuple[Record, bool]:
            cursor = db.execute(
                "INSERT OR IGNORE INTO decisions"
                " (decision_id, created_at, model_version, policy_version, decision, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                self._row(record),
            )
            if cursor.rowcount == 1:
                return record, True
            row = db.execute(
                "SELECT record, outcome FROM decisions WHERE decision_id = ?", (record["decision_id"],)
            ).fetchone()
            return self._load(*row), False

        return self._run(work)

    def put_many(self, records: Sequence[Record]) -> None:
        rows = [self._row(r) for r in records]

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO decisions"
                    " (decision_id, created_at, model_version, policy_version, decision, record)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        self._run(work)

    def get(self, decision_id: str) -> Record | None:
        return self.get_many([decision_id]).get(decision_id)

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Record]:
        def work(db: sqlite3.Connection) -> dict[str, Record]:
            found: dict[str, Record] = {}
            ids = list(decision_ids)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for decision_id, record, outcome in db.execute(
                    # Only "?" placeholders are formatted in; the ids are bound parameters.
                    f"SELECT decision_id, record, outcome FROM decisions WHERE decision_id IN ({marks})",  # nosec B608
                    chunk,
                ):
                    found[decision_id] = self._load(record, outcome)
            return found

        return self._run(work)

    def records(self) -> list[Record]:
        """Every record, oldest first (the shadow comparison and local monitoring read them all)."""

        def work(db: sqlite3.Connection) -> list[Record]:
            rows = db.execute("SELECT record, outcome FROM decisions ORDER BY created_at").fetchall()
            return [self._load(record, outcome) for record, outcome in rows]

        return self._run(work)

    def record_outcome(self, decision_id: str, outcome: dict[str, Any]) -> Record:
        def work(db: sqlite3.Connection) -> Record:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT record, outcome FROM decisions WHERE decision_id = ?", (decision_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"No decision with id {decision_id!r}.")
                stored = self._load(*row)
                if stored["outcome"] is None:
                    db.execute(
                        "UPDATE decisions SET outcome = ? WHERE decision_id = ?",
                        (to_json(outcome).decode(), decision_id),
                    )
                    stored["outcome"] = outcome
                elif not same_outcome(stored["outcome"], outcome):
                    raise OutcomeConflict("A different outcome is already recorded for this decision.")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return stored

        return self._run(work)

    def claim(self, claim: Claim) -> Claim | None:
        def work(db: sqlite3.Connection) -> Claim | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "DELETE FROM claims WHERE idempotency_id = ? AND expires_at <= ?",
                    (claim["idempotency_id"], int(time.time())),
                )
                row = db.execute(
                    "SELECT claim FROM claims WHERE idempotency_id = ?", (claim["idempotency_id"],)
                ).fetchone()
                if row is None:
                    db.execute("INSERT INTO claims VALUES (?, ?, ?, ?)", self._claim_row(claim))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return json.loads(row[0]) if row else None

        return self._run(work)

    @staticmethod
    def _claim_row(claim: Claim) -> tuple[str, str, int, str]:
        return (claim["idempotency_id"], claim["token"], claim["expires_at"], to_json(claim).decode())

    def _swap(self, old_token: str, claim: Claim) -> bool:
        """Replace the claim with ``claim`` while it still holds ``old_token``."""
        _, token, expires_at, text = self._claim_row(claim)

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE claims SET token = ?, expires_at = ?, claim = ?"
                " WHERE idempotency_id = ? AND token = ?",
                (token, expires_at, text, claim["idempotency_id"], old_token),
            )
            return cursor.rowcount == 1

        return self._run(work)

    def take_over(self, stale: Claim, claim: Claim) -> bool:
        return self._swap(stale["token"], claim)

    def complete(self, claim: Claim) -> None:
        if not self._swap(claim["token"], {**claim, "status": "complete"}):
            raise DecisionLogUnavailable(
                "The idempotency claim was taken over while this request ran; retry."
            )

    def release(self, claim: Claim) -> None:
        self._swap(claim["token"], {**claim, "status": "released"})

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def to_attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (numbers as exact decimal strings)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attribute(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    return value  # S, BOOL


DAY_INDEX = "by-day"
"""DecisionsTable's global secondary index for reading decisions by time (:mod:`credit_api.decision_reads`):
partition key :data:`DAY_KEY`, sort key ``created_at``, every attribute projected."""
DAY_KEY = "day_shard"
DAY_SHARDS = 8
"""Each day's decisions are spread over this many index partitions (``YYYY-MM-DD#n``). One
partition takes at most 1000 write units a second, and a batch of 1000 records of about 4 KB is
some 4000: on one partition per day the index would throttle, and DynamoDB then throttles the
table's writes too. Eight partitions take a full batch; a day is read as eight queries."""


OUTCOME_INDEX = "by-outcome-month"
"""DecisionsTable's sparse global secondary index of the decisions with an outcome, by the month the
outcome was recorded (:func:`credit_api.decision_reads.outcomes_recorded`): partition key
:data:`OUTCOME_KEY`, sort key :data:`OUTCOME_AT`, the attributes of :data:`OUTCOME_PROJECTION`."""
OUTCOME_KEY = "outcome_shard"
OUTCOME_AT = "outcome_at"
OUTCOME_PROJECTION = (
    "created_at",
    "expires_at",
    "model_version",
    "policy_version",
    "inputs",
    "probability_of_default",
    "decision",
    "score",
    "risk_grade",
    "outcome",
    "shadow",
)
"""What a reader of outcomes uses (training rows, performance, calibration, the shadow's AUC):
the index leaves out the reasons, the profit and the request's bookkeeping, a third of a record."""
STORAGE_KEYS = frozenset({DAY_KEY, OUTCOME_KEY, OUTCOME_AT})


def day_shard(decision_id: str, created_at: str) -> str:
    """The index partition of a decision: its creation day and a shard fixed by its id."""
    return f"{created_at[:10]}#{zlib.crc32(decision_id.encode()) % DAY_SHARDS}"


def outcome_shard(decision_id: str, recorded_at: str) -> str:
    """The outcome index partition: the month the outcome was recorded and the decision's shard.

    By month, not day: a reader continuing from its last run asks a partition for the range of
    ``outcome_at`` since then, which costs that range whatever the partition holds, and the first
    read of the whole retention is 27 months of 8 queries instead of 800 days of 8. Sharded as
    the day index is, by the same id: a file of 1000 outcomes lands in one month.
    """
    return f"{recorded_at[:7]}#{zlib.crc32(decision_id.encode()) % DAY_SHARDS}"


def outcome_keys(decision_id: str, recorded_at: str) -> dict[str, dict[str, str]]:
    """The outcome index's keys for an outcome recorded at ``recorded_at``, as item attributes."""
    return {OUTCOME_KEY: {"S": outcome_shard(decision_id, recorded_at)}, OUTCOME_AT: {"S": recorded_at}}


def _item(record: Record) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in record.items() if v is not None}


def _decision_item(record: Record) -> dict[str, Any]:
    """A decision record as stored: with its index keys (the outcome index's only with an outcome)."""
    item = _item(record)
    item[DAY_KEY] = {"S": day_shard(record["decision_id"], record["created_at"])}
    recorded_at = (record.get("outcome") or {}).get("recorded_at")
    if recorded_at:
        item |= outcome_keys(record["decision_id"], recorded_at)
    return item


def record_of(item: dict[str, Any]) -> Record:
    """A stored decision item as a record: the index keys left out, absent optional fields None."""
    record = {k: from_attribute(v) for k, v in item.items() if k not in STORAGE_KEYS}
    for optional in OPTIONAL_FIELDS:
        record.setdefault(optional, None)
    return record


class DynamoDecisionLog:
    """DynamoDB through a boto3 client (made on first use unless one is given).

    The SDK retries a call whose answer it did not get (a read timeout, a dropped connection),
    and the first attempt may have landed: a retried conditional write then fails its
    condition on this request's own item. Every conditional write here tells the two apart by
    reading the item back (the whole record; the claim's token), so a lost answer is
    never mistaken for another request's write.
    """

    kind = "dynamodb"
    BATCH_WRITE = 25
    BATCH_GET = 100
    ATTEMPTS = 5
    WRITERS = 8

    def __init__(
        self,
        table: str,
        client: Any = None,
        endpoint_url: str | None = None,
        idempotency_table: str | None = None,
    ) -> None:
        self.table = table
        self.idempotency_table = idempotency_table
        self._client = client
        self._endpoint_url = endpoint_url
        self._executor: ThreadPoolExecutor | None = None

    @property
    def client(self) -> Any:
        """The injected client, else the shared one (not kept: a SnapStart restore renews it)."""
        if self._client is not None:
            return self._client
        from credit_api.aws import client

        return client("dynamodb", self._endpoint_url)

    def _unavailable(self, exc: Exception) -> DecisionLogUnavailable:
        logger.error("decision log failed", extra={"store": self.kind, "error": error_code(exc)})
        return DecisionLogUnavailable("The decision could not be recorded; no decision was made.")

    def put(self, record: Record) -> tuple[Record, bool]:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_decision_item(record),
                ConditionExpression="attribute_not_exists(decision_id)",
            )
            return record, True
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise self._unavailable(exc) from exc
        existing = self.get(record["decision_id"])
        if existing is None:  # deleted between the two calls: not something to paper over
            raise DecisionLogUnavailable("The decision record changed while it was written; retry.")
        return existing, existing == record  # equal: this call's own write, its answer lost

    def put_many(self, records: Sequence[Record]) -> None:
        """BatchWriteItem in chunks of 25, several chunks in flight at once.

        A batch of 1000 is 40 calls; one after the other they would cost 40 round trips. The
        calls are I/O, so a few threads overlap them (boto3 clients are thread-safe). Any chunk
        that still fails after retries fails the whole request.
        """
        items = [{"PutRequest": {"Item": _decision_item(r)}} for r in records]
        chunks = [items[i : i + self.BATCH_WRITE] for i in range(0, len(items), self.BATCH_WRITE)]
        try:
            if len(chunks) == 1:
                self._write_chunk(chunks[0])
            else:
                self._write_all(chunks)
        except DecisionLogUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def _write_all(self, chunks: list[list[dict[str, Any]]]) -> None:
        """Every chunk, 8 at a time; on a failure the queued ones are cancelled and the running
        ones awaited, so none is still in flight (and may land) once the request is answered."""
        futures = [self._pool().submit(carry(self._write_chunk), chunk) for chunk in chunks]
        _, running = wait(futures, return_when=FIRST_EXCEPTION)
        for future in running:
            future.cancel()
        wait(running)
        for future in futures:
            if not future.cancelled():
                future.result()  # re-raises the first failure

    def _write_chunk(self, pending: list[dict[str, Any]]) -> None:
        for attempt in range(self.ATTEMPTS):
            answer = self.client.batch_write_item(RequestItems={self.table: pending})
            pending = answer.get("UnprocessedItems", {}).get(self.table, [])
            if not pending:
                return
            time.sleep(0.02 * 2**attempt)
        raise RuntimeError(f"{len(pending)} records left unprocessed")

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.WRITERS, thread_name_prefix="decision-log")
        return self._executor

    def get(self, decision_id: str) -> Record | None:
        try:
            answer = self.client.get_item(
                TableName=self.table, Key={"decision_id": {"S": decision_id}}, ConsistentRead=True
            )
        except Exception as exc:
            raise self._unavailable(exc) from exc
        item = answer.get("Item")
        return record_of(item) if item else None

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        ids = list(dict.fromkeys(decision_ids))
        try:
            for start in range(0, len(ids), self.BATCH_GET):
                keys = [{"decision_id": {"S": i}} for i in ids[start : start + self.BATCH_GET]]
                request = {self.table: {"Keys": keys, "ConsistentRead": True}}
                for attempt in range(self.ATTEMPTS):
                    answer = self.client.batch_get_item(RequestItems=request)
                    for item in answer.get("Responses", {}).get(self.table, []):
                        record = record_of(item)
                        found[record["decision_id"]] = record
                    request = answer.get("UnprocessedKeys") or {}
                    if not request:
                        break
                    time.sleep(0.02 * 2**attempt)
                else:
                    raise RuntimeError("decision records left unread")
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return found

    def _claims(self) -> str:
        if not self.idempotency_table:
            logger.error("decision log failed", extra={"store": self.kind, "error": "NoIdempotencyTable"})
            raise DecisionLogUnavailable("Idempotency keys need IDEMPOTENCY_TABLE; no decision was made.")
        return self.idempotency_table

    def claim(self, claim: Claim) -> Claim | None:
        table = self._claims()
        for _ in range(self.ATTEMPTS):
            try:
                self.client.put_item(
                    TableName=table,
                    Item=_item(claim),
                    ConditionExpression="attribute_not_exists(idempotency_id) OR expires_at <= :now",
                    ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
                )
                return None
            except Exception as exc:
                if not is_conditional_failure(exc):
                    raise self._unavailable(exc) from exc
            existing = self._stored_claim(claim["idempotency_id"])
            if existing is not None:
                return None if existing.get("token") == claim["token"] else existing
            # Released between the two calls: try to claim it again.
        raise DecisionLogUnavailable("The idempotency claim kept changing; retry.")

    def _swap(self, old_token: str, claim: Claim) -> bool:
        """Replace the claim with ``claim`` while it still holds ``old_token`` (a conditional PutItem)."""
        try:
            self.client.put_item(
                TableName=self._claims(),
                Item=_item(claim),
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":token": {"S": old_token}},
            )
            return True
        except DecisionLogUnavailable:
            raise
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise self._unavailable(exc) from exc
            return self._holds(claim)

    def _holds(self, claim: Claim) -> bool:
        """Whether the stored claim is ``claim`` (same token and status): a swap whose condition
        failed only because the SDK retried it after its first attempt landed and lost its answer."""
        stored = self._stored_claim(claim["idempotency_id"]) or {}
        return stored.get("token") == claim["token"] and stored.get("status") == claim["status"]

    def _stored_claim(self, idempotency_id: str) -> Claim | None:
        """The claim stored under ``idempotency_id`` (a consistent read), or None."""
        try:
            answer = self.client.get_item(
                TableName=self._claims(), Key={"idempotency_id": {"S": idempotency_id}}, ConsistentRead=True
            )
        except Exception as exc:
            raise self._unavailable(exc) from exc
        item = answer.get("Item")
        return None if item is None else {k: from_attribute(v) for k, v in item.items()}

    def take_over(self, stale: Claim, claim: Claim) -> bool:
        return self._swap(stale["token"], claim)

    def complete(self, claim: Claim) -> None:
        if not self._swap(claim["token"], {**claim, "status": "complete"}):
            raise DecisionLogUnavailable(
                "The idempotency claim was taken over while this request ran; retry."
            )

    def release(self, claim: Claim) -> None:
        self._swap(claim["token"], {**claim, "status": "released"})

    def record_outcome(self, decision_id: str, outcome: dict[str, Any]) -> Record:
        keys = outcome_keys(decision_id, outcome["recorded_at"])
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={"decision_id": {"S": decision_id}},
                UpdateExpression="SET outcome = :outcome, #shard = :shard, #at = :at",
                ConditionExpression="attribute_exists(decision_id) AND attribute_not_exists(outcome)",
                ExpressionAttributeNames={"#shard": OUTCOME_KEY, "#at": OUTCOME_AT},
                ExpressionAttributeValues={
                    ":outcome": to_attribute(outcome),
                    ":shard": keys[OUTCOME_KEY],
                    ":at": keys[OUTCOME_AT],
                },
                ReturnValues="ALL_NEW",
            )
            return record_of(answer["Attributes"])
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise self._unavailable(exc) from exc
        stored = self.get(decision_id)
        if stored is None:
            raise NotFound(f"No decision with id {decision_id!r}.")
        if not same_outcome(stored["outcome"] or {}, outcome):
            raise OutcomeConflict("A different outcome is already recorded for this decision.")
        return stored


def open_log(
    table: str | None,
    db_path: Path,
    endpoint_url: str | None = None,
    idempotency_table: str | None = None,
) -> DecisionLog:
    """DynamoDB when a table is configured, else the local SQLite file (claims in the same file)."""
    if table:
        return DynamoDecisionLog(table, endpoint_url=endpoint_url, idempotency_table=idempotency_table)
    return SqliteDecisionLog(db_path)
