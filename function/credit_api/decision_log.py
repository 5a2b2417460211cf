"""The record of every credit decision: one interface, two stores.

DynamoDB (``DECISIONS_TABLE``, partition key ``decision_id`` of type S) when deployed; a
SQLite file (``DECISIONS_DB``) for local runs. A decision is returned to the caller only
after its record is written; any store failure raises
:class:`~credit_api.errors.DecisionLogUnavailable`, which the API answers with a 503.

``put`` is a conditional insert (an existing record with the same id wins and is returned),
which is what makes ``Idempotency-Key`` retries safe. ``put_many`` writes a batch in
DynamoDB batches of 25 (one SQLite transaction locally). Outcomes are stored on the decision
record and never overwritten by a different outcome.

A record, as stored and as returned by ``GET /decisions/{id}``::

    {"decision_id", "created_at", "model_version", "request_id", "idempotency_key"|None,
     "request_hash"|None (sha256 of the request, with an idempotency key),
     "inputs": {16 inputs}, "probability_of_default", "decision", "score", "risk_grade",
     "expected_profit", "reasons": [{"input", "label", "message"}],
     "outcome": None | {"defaulted", "observed_at", "recorded_at"}}
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from pydantic_core import to_json

from credit_api.aws import carry, error_code, is_conditional_failure
from credit_api.errors import DecisionLogUnavailable, NotFound, OutcomeConflict
from credit_api.observability import logger

Record = dict[str, Any]
OPTIONAL_FIELDS = ("idempotency_key", "request_hash", "outcome")
"""Fields that may be None: DynamoDB stores them only when set."""


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
    def _row(record: Record) -> tuple[str, str, str, str, str]:
        # The record's own "outcome" (None when written) is superseded by the outcome column.
        return (
            record["decision_id"],
            record["created_at"],
            record["model_version"],
            record["decision"],
            to_json(record).decode(),
        )

    @staticmethod
    def _load(record: str, outcome: str | None) -> Record:
        loaded = json.loads(record)
        loaded["outcome"] = json.loads(outcome) if outcome else None
        return loaded

    def put(self, record: Record) -> tuple[Record, bool]:
        def work(db: sqlite3.Connection) -> tuple[Record, bool]:
            cursor = db.execute(
                "INSERT OR IGNORE INTO decisions (decision_id, created_at, model_version, decision, record)"
                " VALUES (?, ?, ?, ?, ?)",
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
                    "INSERT INTO decisions (decision_id, created_at, model_version, decision, record)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO UPDATE SET"
                    " created_at = excluded.created_at, model_version = excluded.model_version,"
                    " decision = excluded.decision, record = excluded.record",
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
                    f"SELECT decision_id, record, outcome FROM decisions WHERE decision_id IN ({marks})",
                    chunk,
                ):
                    found[decision_id] = self._load(record, outcome)
            return found

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


def _item(record: Record) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in record.items() if v is not None}


def _record(item: dict[str, Any]) -> Record:
    record = {k: from_attribute(v) for k, v in item.items()}
    for optional in OPTIONAL_FIELDS:
        record.setdefault(optional, None)
    return record


class DynamoDecisionLog:
    """DynamoDB through a boto3 client (made on first use unless one is given)."""

    kind = "dynamodb"
    BATCH_WRITE = 25
    BATCH_GET = 100
    ATTEMPTS = 5
    WRITERS = 8

    def __init__(self, table: str, client: Any = None, endpoint_url: str | None = None) -> None:
        self.table = table
        self._client = client
        self._endpoint_url = endpoint_url
        self._executor: ThreadPoolExecutor | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from credit_api.aws import client

            self._client = client("dynamodb", self._endpoint_url)
        return self._client

    def _unavailable(self, exc: Exception) -> DecisionLogUnavailable:
        logger.error("decision log failed", extra={"store": self.kind, "error": error_code(exc)})
        return DecisionLogUnavailable("The decision could not be recorded; no decision was made.")

    def put(self, record: Record) -> tuple[Record, bool]:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_item(record),
                ConditionExpression="attribute_not_exists(decision_id)",
            )
            return record, True
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise self._unavailable(exc) from exc
        existing = self.get(record["decision_id"])
        if existing is None:  # deleted between the two calls: not something to paper over
            raise DecisionLogUnavailable("The decision record changed while it was written; retry.")
        return existing, False

    def put_many(self, records: Sequence[Record]) -> None:
        """BatchWriteItem in chunks of 25, several chunks in flight at once.

        A batch of 1000 is 40 calls; one after the other they would cost 40 round trips. The
        calls are I/O, so a few threads overlap them (boto3 clients are thread-safe). Any chunk
        that still fails after retries fails the whole request.
        """
        items = [{"PutRequest": {"Item": _item(r)}} for r in records]
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
        return _record(item) if item else None

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
                        record = _record(item)
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

    def record_outcome(self, decision_id: str, outcome: dict[str, Any]) -> Record:
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={"decision_id": {"S": decision_id}},
                UpdateExpression="SET outcome = :outcome",
                ConditionExpression="attribute_exists(decision_id) AND attribute_not_exists(outcome)",
                ExpressionAttributeValues={":outcome": to_attribute(outcome)},
                ReturnValues="ALL_NEW",
            )
            return _record(answer["Attributes"])
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise self._unavailable(exc) from exc
        stored = self.get(decision_id)
        if stored is None:
            raise NotFound(f"No decision with id {decision_id!r}.")
        if not same_outcome(stored["outcome"] or {}, outcome):
            raise OutcomeConflict("A different outcome is already recorded for this decision.")
        return stored


def open_log(table: str | None, db_path: Path, endpoint_url: str | None = None) -> DecisionLog:
    """DynamoDB when a table is configured, else the local SQLite file."""
    if table:
        return DynamoDecisionLog(table, endpoint_url=endpoint_url)
    return SqliteDecisionLog(db_path)
