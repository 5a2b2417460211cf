"""Credit decisions as a service: assess, record, then answer; plain functions, no HTTP.

No decision leaves this module unless its record was written first. With an
``Idempotency-Key`` the decision ids are derived from the key (and the caller's API key id),
so a retry finds the record of the first attempt and gets the same decision back, while the
conditional write guarantees there is never a second record. The same key with a different
request is a conflict, not a new decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from credit_api.decision_log import DecisionLog, Record
from credit_api.errors import IdempotencyConflict, NotFound
from credit_api.model_store import LoadedModel, ModelStore
from credit_api.observability import count, logger, milliseconds
from credit_api.underwriting import assess

RESPONSE_FIELDS = (
    "decision_id",
    "model_version",
    "probability_of_default",
    "decision",
    "score",
    "risk_grade",
    "reasons",
)
_ID_NAMESPACE = uuid.UUID("6f1c4c1e-5b1a-4e53-9a55-2f0b8a4f2d11")


@dataclass(frozen=True)
class Call:
    """Who asked, and how: what a decision record keeps about the request besides its inputs."""

    request_id: str
    idempotency_key: str | None = None
    caller: str = ""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_hash(applicants: Sequence[dict[str, Any]]) -> str:
    canonical = json.dumps(list(applicants), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def random_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as strings, from one ``os.urandom`` call.

    Equivalent to ``str(uuid.uuid4())`` per id, which cost about 2.5 ms on a batch of 1000.
    """
    octets = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    octets[:, 6] = (octets[:, 6] & 0x0F) | 0x40  # version 4
    octets[:, 8] = (octets[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = octets.tobytes().hex()
    return [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        for h in (text[k : k + 32] for k in range(0, 32 * n, 32))
    ]


def answer(record: Record) -> dict[str, Any]:
    """What the caller gets for a decision: the record less inputs and bookkeeping."""
    return {field: record[field] for field in RESPONSE_FIELDS}


class DecisionService:
    def __init__(self, store: ModelStore, log: DecisionLog) -> None:
        self.store = store
        self.log = log

    def _ids(self, call: Call, route: str, n: int) -> list[str]:
        if call.idempotency_key is None:
            return random_ids(n)
        base = f"{call.caller}\x1f{route}\x1f{call.idempotency_key}"
        return [str(uuid.uuid5(_ID_NAMESPACE, f"{base}\x1f{i}")) for i in range(n)]

    def _records(
        self, model: LoadedModel, applicants: list[dict[str, Any]], ids: list[str], call: Call
    ) -> list[Record]:
        created_at = now()
        digest = request_hash(applicants) if call.idempotency_key else None
        return [
            {
                "decision_id": decision_id,
                "created_at": created_at,
                "model_version": model.version,
                "request_id": call.request_id,
                "idempotency_key": call.idempotency_key,
                "request_hash": digest,
                "inputs": applicant,
                **assessment,
                "outcome": None,
            }
            for decision_id, applicant, assessment in zip(
                ids, applicants, assess(model, applicants), strict=True
            )
        ]

    @staticmethod
    def _replay(stored: Sequence[Record], applicants: list[dict[str, Any]]) -> None:
        digest = request_hash(applicants)
        if any(r.get("request_hash") != digest for r in stored):
            raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
        count("IdempotentReplays")

    def _observe(self, records: Sequence[Record], started: float, metric: str, replayed: bool) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        milliseconds(metric, elapsed)
        outcomes = Counter(r["decision"] for r in records)
        if not replayed:
            for outcome, n in outcomes.items():
                count(f"{outcome.capitalize()}Decisions", n)
        logger.info(
            "decisions" if len(records) > 1 else "decision",
            extra={
                "decision_ids": [r["decision_id"] for r in records],
                "model_version": records[0]["model_version"],
                "outcomes": dict(outcomes),
                "latency_ms": round(elapsed, 3),
                "replayed": replayed,
            },
        )

    def predict(self, applicant: dict[str, Any], call: Call) -> tuple[dict[str, Any], bool]:
        """(answer, replayed) for one applicant."""
        started = time.perf_counter()
        (decision_id,) = self._ids(call, "predict", 1)
        if call.idempotency_key is not None:
            existing = self.log.get(decision_id)
            if existing is not None:
                self._replay([existing], [applicant])
                self._observe([existing], started, "PredictionLatencyMs", replayed=True)
                return answer(existing), True
        (record,) = self._records(self.store.current(), [applicant], [decision_id], call)
        stored, created = self.log.put(record)
        if not created:  # a concurrent retry with the same key won the conditional write
            self._replay([stored], [applicant])
        self._observe([stored], started, "PredictionLatencyMs", replayed=not created)
        return answer(stored), not created

    def predict_batch(
        self, applicants: list[dict[str, Any]], call: Call
    ) -> tuple[list[dict[str, Any]], bool]:
        """(answers in request order, replayed) for a batch, scored in one model run."""
        started = time.perf_counter()
        ids = self._ids(call, "batch", len(applicants))
        if call.idempotency_key is not None:
            existing = self.log.get_many(ids)
            if existing:
                self._replay(list(existing.values()), applicants)
                if len(existing) == len(ids):
                    stored = [existing[i] for i in ids]
                    self._observe(stored, started, "BatchLatencyMs", replayed=True)
                    return [answer(r) for r in stored], True
                # An earlier attempt failed part-way and was answered 503: write the whole batch.
        records = self._records(self.store.current(), applicants, ids, call)
        self.log.put_many(records)
        self._observe(records, started, "BatchLatencyMs", replayed=False)
        return [answer(r) for r in records], False

    def decision(self, decision_id: str) -> Record:
        record = self.log.get(decision_id)
        if record is None:
            raise NotFound(f"No decision with id {decision_id!r}.")
        return record

    def record_outcome(self, decision_id: str, defaulted: bool, observed_at: datetime) -> Record:
        outcome = {
            "defaulted": defaulted,
            "observed_at": observed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "recorded_at": now(),
        }
        record = self.log.record_outcome(decision_id, outcome)
        count("OutcomesRecorded")
        logger.info("outcome recorded", extra={"decision_id": decision_id})
        return record
