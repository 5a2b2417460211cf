"""Credit decisions as a service: assess, record, then answer; plain functions, no HTTP.

No decision leaves this module unless its record was written first. Decision ids are always
fresh random UUIDs, never derived from anything a client sends or can read.

With an ``Idempotency-Key`` the first request claims the key (for its caller and route)
with a conditional write (:meth:`DecisionLog.claim`) holding the request's hash and the ids
it will record; only the claim's owner decides. Any other request with that key gets:
the stored decisions again if the claim is complete and the request the same; 409
``idempotency_key_in_progress`` (with ``Retry-After``) while the owner is still deciding;
409 ``idempotency_key_reused`` for a different request. A claim left in progress by a request
that crashed (older than the function's timeout, with margin), or released after a failed
write, is taken over by a retry, conditionally, so exactly one retry wins. Records a failed
write left behind are never answered to anyone and never overwritten.

Every record and answer names the model and the policy it was decided under
(``model_version``, ``policy_version``): the policy is published apart from the model, and both
are taken once per request (:meth:`ModelStore.served`), so a batch is decided under one pair.

With a shadow challenger loaded (:mod:`credit_api.shadow`), each record also carries the
shadow's ``{model_version, probability_of_default, decision}`` under ``shadow``: scored on the
champion's input tensors, kept out of the answer, and never a reason to fail the request (a
failure is logged and counted as ``ShadowScoringFailures``, and the record says ``None``).
Reading a record back, only the risk team sees it: it is the bank's model-risk evidence, not
part of the decision its caller was given.

A decision belongs to the API key that made it: only that caller, or a risk-team key, reads
it or records its outcome; anyone else gets the same 404 as for an unknown id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from credit_api.aws import carry
from credit_api.decision_log import Claim, DecisionLog, Record, same_outcome
from credit_api.errors import (
    DecisionLogUnavailable,
    IdempotencyConflict,
    IdempotencyInProgress,
    NotFound,
    OutcomeConflict,
)
from credit_api.model_store import LoadedModel, ModelStore
from credit_api.observability import count, logger, milliseconds
from credit_api.policy_store import ServedPolicy
from credit_api.settings import DECISION_RETENTION_DAYS, IDEMPOTENCY_HOURS, IDEMPOTENCY_STALE_SECONDS
from credit_api.underwriting import assess, shadow_score

RESPONSE_FIELDS = (
    "decision_id",
    "model_version",
    "policy_version",
    "probability_of_default",
    "decision",
    "score",
    "risk_grade",
    "reasons",
)


OUTCOME_WRITERS = 8
"""Outcomes of one batch recorded at once: each is a read and a conditional update (I/O), so a
batch of 1000 one after the other would spend most of the function's 15 s on round trips."""


@dataclass(frozen=True)
class ReportedOutcome:
    """One outcome to record, already validated (``observed_at`` in UTC)."""

    decision_id: str
    defaulted: bool
    observed_at: datetime


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
    """What the caller gets for a decision: the record less inputs and bookkeeping.

    Records written before policies were versioned have no ``policy_version``: None on replay.
    """
    return {field: record.get(field) for field in RESPONSE_FIELDS}


def claim_id(call: Call, route: str) -> str:
    """The claim's key: caller, route and Idempotency-Key, hashed (the key is the client's text)."""
    text = f"{call.caller}\x1f{route}\x1f{call.idempotency_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def new_claim(call: Call, route: str, digest: str, ids: list[str]) -> Claim:
    started = time.time()
    return {
        "idempotency_id": claim_id(call, route),
        "request_hash": digest,
        "status": "in_progress",
        "decision_ids": ids,
        "caller": call.caller,
        "token": random_ids(1)[0],
        "started_at": started,
        "expires_at": int(started) + IDEMPOTENCY_HOURS * 3600,
    }


class DecisionService:
    def __init__(self, store: ModelStore, log: DecisionLog, readers: Collection[str] = ()) -> None:
        self.store = store
        self.log = log
        self.readers = frozenset(readers)
        """API key ids (the risk team's) that may read any decision and record any outcome."""
        self._outcome_executor: ThreadPoolExecutor | None = None

    def _records(
        self,
        served: tuple[LoadedModel, ServedPolicy],
        applicants: list[dict[str, Any]],
        ids: list[str],
        call: Call,
    ) -> list[Record]:
        model, policy = served
        created = datetime.now(UTC)
        created_at = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        expires_at = int(created.timestamp()) + DECISION_RETENTION_DAYS * 86400
        digest = request_hash(applicants) if call.idempotency_key else None
        feed = model.scorer.feed(applicants)
        assessments = assess(model, applicants, policy, feed)
        shadows = self._shadow(model, policy, feed, applicants)
        return [
            {
                "decision_id": decision_id,
                "created_at": created_at,
                "model_version": model.version,
                "policy_version": policy.version,
                "request_id": call.request_id,
                "idempotency_key": call.idempotency_key,
                "request_hash": digest,
                "caller": call.caller,
                "expires_at": expires_at,
                "inputs": applicant,
                **assessment,
                "outcome": None,
                "shadow": shadow,
            }
            for decision_id, applicant, assessment, shadow in zip(
                ids, applicants, assessments, shadows, strict=True
            )
        ]

    def _shadow(
        self,
        champion: LoadedModel,
        policy: ServedPolicy,
        feed: dict[str, np.ndarray],
        applicants: list[dict[str, Any]],
    ) -> list[dict[str, Any] | None]:
        """The shadow's score per applicant, or ``None`` each when no (distinct) shadow runs or it fails."""
        shadow = self.store.shadow
        if shadow is None or shadow.sha256 == champion.sha256:
            return [None] * len(applicants)
        try:
            return shadow_score(shadow, champion, feed, applicants, policy)
        except Exception as exc:  # the shadow never fails a request
            count("ShadowScoringFailures")
            logger.warning(
                "shadow scoring failed",
                extra={"shadow_version": shadow.version, "error": exc.__class__.__name__},
            )
            return [None] * len(applicants)

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
                "policy_version": records[0].get("policy_version"),
                "outcomes": dict(outcomes),
                "latency_ms": round(elapsed, 3),
                "replayed": replayed,
            },
        )

    def _stored(self, claim: Claim) -> list[Record] | None:
        """The claim's records in request order, or None unless every one of them is recorded."""
        found = self.log.get_many(claim["decision_ids"])
        if len(found) != len(claim["decision_ids"]):
            return None
        return [found[i] for i in claim["decision_ids"]]

    def _settle(self, existing: Claim, claim: Claim) -> list[Record] | None:
        """What a request that lost the claim gets: stored records to replay, or None if it took over."""
        if existing["request_hash"] != claim["request_hash"]:
            raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
        if existing["status"] == "complete":
            stored = self._stored(existing)
            if stored is None:
                raise DecisionLogUnavailable(
                    "The decisions for this Idempotency-Key could not be read; retry."
                )
            return stored
        fresh = time.time() - float(existing["started_at"]) < IDEMPOTENCY_STALE_SECONDS
        if existing["status"] == "in_progress" and fresh:
            raise IdempotencyInProgress("A request with this Idempotency-Key is still being decided; retry.")
        # Released after a failed write, or its owner crashed: if every record was written,
        # finish its claim and replay, else take it over and decide afresh with new ids.
        stored = self._stored(existing)
        if stored is not None:
            if not self.log.take_over(existing, {**existing, "status": "complete"}):
                raise IdempotencyInProgress("Another retry with this Idempotency-Key took it over; retry.")
            return stored
        if not self.log.take_over(existing, claim):
            raise IdempotencyInProgress("Another retry with this Idempotency-Key took it over; retry.")
        return None

    def _decide(self, applicants: list[dict[str, Any]], call: Call, route: str) -> tuple[list[Record], bool]:
        """(records in request order, replayed): the one path by which decisions are made."""
        ids = random_ids(len(applicants))
        if call.idempotency_key is None:
            return self._write(applicants, ids, call), False
        claim = new_claim(call, route, request_hash(applicants), ids)
        existing = self.log.claim(claim)
        if existing is not None:
            stored = self._settle(existing, claim)
            if stored is not None:
                count("IdempotentReplays")
                return stored, True
        try:
            records = self._write(applicants, ids, call)
        except Exception:
            self._release(claim)
            raise
        self.log.complete(claim)
        return records, False

    def _write(self, applicants: list[dict[str, Any]], ids: list[str], call: Call) -> list[Record]:
        records = self._records(self.store.served(), applicants, ids, call)
        if len(records) == 1:
            _, created = self.log.put(records[0])
            if not created:  # a random id already taken: not a collision to paper over
                raise DecisionLogUnavailable("The decision could not be recorded; no decision was made.")
        else:
            self.log.put_many(records)
        return records

    def _release(self, claim: Claim) -> None:
        """Free the key after a failed write, so the client's retry need not wait for it to go stale."""
        with contextlib.suppress(DecisionLogUnavailable):  # else it goes stale and is taken over
            self.log.release(claim)

    def predict(self, applicant: dict[str, Any], call: Call) -> tuple[dict[str, Any], bool]:
        """(answer, replayed) for one applicant."""
        started = time.perf_counter()
        (record,), replayed = self._decide([applicant], call, "predict")
        self._observe([record], started, "PredictionLatencyMs", replayed=replayed)
        return answer(record), replayed

    def predict_batch(
        self, applicants: list[dict[str, Any]], call: Call
    ) -> tuple[list[dict[str, Any]], bool]:
        """(answers in request order, replayed) for a batch, scored in one model run."""
        started = time.perf_counter()
        records, replayed = self._decide(applicants, call, "batch")
        self._observe(records, started, "BatchLatencyMs", replayed=replayed)
        return [answer(r) for r in records], replayed

    def _outcome_pool(self) -> ThreadPoolExecutor:
        if self._outcome_executor is None:
            self._outcome_executor = ThreadPoolExecutor(
                max_workers=OUTCOME_WRITERS, thread_name_prefix="outcomes"
            )
        return self._outcome_executor

    def _may_see(self, record: Record | None, caller: str) -> bool:
        return record is not None and (record.get("caller", "") == caller or caller in self.readers)

    def decision(self, decision_id: str, caller: str = "") -> Record:
        """The record, for its own caller or the risk team; 404 alike for unknown and not yours."""
        record = self.log.get(decision_id)
        if record is None or not self._may_see(record, caller):
            raise NotFound(f"No decision with id {decision_id!r}.")
        return self._shown(record, caller)

    def _shown(self, record: Record, caller: str) -> Record:
        """The record as ``caller`` may read it: the shadow's score for the risk team only."""
        if caller in self.readers:
            return record
        return {k: v for k, v in record.items() if k != "shadow"}

    def record_outcome(
        self, decision_id: str, defaulted: bool, observed_at: datetime, caller: str = ""
    ) -> Record:
        self.decision(decision_id, caller)  # the same 404 for a decision that is not the caller's
        return self._write_outcome(decision_id, self._outcome(defaulted, observed_at), caller)

    def _write_outcome(self, decision_id: str, outcome: dict[str, Any], caller: str) -> Record:
        """The conditional write itself, once the caller may see the decision (the store refuses
        an unknown id, :class:`NotFound`, and a different outcome, :class:`OutcomeConflict`)."""
        record = self.log.record_outcome(decision_id, outcome)
        count("OutcomesRecorded")
        logger.info("outcome recorded", extra={"decision_id": decision_id})
        return self._shown(record, caller)

    def record_outcomes(self, reports: Sequence[ReportedOutcome], caller: str = "") -> list[dict[str, Any]]:
        """``{"status", "outcome"}`` per report, in order; reports name distinct decisions.

        One batched read (``get_many``) sorts the reports: unknown or not the caller's
        (``not_found``, the same answer as for one), already holding this outcome (``unchanged``)
        or another (``conflict``). The rest go through the same conditional write as
        :meth:`record_outcome` (access already checked by that read, so not read again), several
        at once (:data:`OUTCOME_WRITERS`). A store
        failure fails the whole call with :class:`DecisionLogUnavailable` once no write is in
        flight: the caller resends the same reports, and those already recorded come back
        ``unchanged`` (recording the same outcome again changes nothing).
        """
        stored = self.log.get_many([r.decision_id for r in reports])
        results: list[dict[str, Any]] = []
        pending: list[int] = []
        for i, report in enumerate(reports):
            record = stored.get(report.decision_id)
            if not self._may_see(record, caller):
                results.append({"status": "not_found", "outcome": None})
                continue
            outcome = (record or {}).get("outcome")
            if outcome is None:
                results.append({"status": "recorded", "outcome": None})
                pending.append(i)
            else:
                same = same_outcome(outcome, self._outcome(report.defaulted, report.observed_at))
                results.append({"status": "unchanged" if same else "conflict", "outcome": outcome})
        for i, status in zip(pending, self._record_all([reports[i] for i in pending], caller), strict=True):
            results[i] = status
        return results

    def _record_all(self, reports: Sequence[ReportedOutcome], caller: str) -> list[dict[str, Any]]:
        """The outcome write for each report, at most :data:`OUTCOME_WRITERS` at once."""

        def one(report: ReportedOutcome) -> dict[str, Any]:
            outcome = self._outcome(report.defaulted, report.observed_at)
            try:
                record = self._write_outcome(report.decision_id, outcome, caller)
            except NotFound:  # deleted (TTL) since the read
                return {"status": "not_found", "outcome": None}
            except OutcomeConflict:  # another request recorded a different one since the read
                return {
                    "status": "conflict",
                    "outcome": (self.log.get(report.decision_id) or {}).get("outcome"),
                }
            return {"status": "recorded", "outcome": record["outcome"]}

        if not reports:
            return []
        futures = [self._outcome_pool().submit(carry(one), report) for report in reports]
        _, running = wait(futures, return_when=FIRST_EXCEPTION)
        for future in running:
            future.cancel()
        wait(running)
        failed = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if failed and not isinstance(failed[0], DecisionLogUnavailable):
            raise failed[0]
        if failed:
            done = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)
            logger.warning("outcome batch interrupted", extra={"recorded": done, "reports": len(reports)})
            raise DecisionLogUnavailable(
                f"The decision log failed after {done} of the {len(reports)} new outcomes were recorded;"
                " send the same request again (those come back unchanged)."
            ) from failed[0]
        return [f.result() for f in futures]

    @staticmethod
    def _outcome(defaulted: bool, observed_at: datetime) -> dict[str, Any]:
        return {
            "defaulted": defaulted,
            "observed_at": observed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "recorded_at": now(),
        }
