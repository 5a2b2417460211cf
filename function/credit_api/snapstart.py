"""SnapStart hooks: warm everything before the snapshot, renew per-environment state after restore.

Lambda snapshots the initialised function once per published version and resumes copies of
it, so whatever ran during init is shared by every restored environment. Before the snapshot
the model and policy are loaded, the AWS clients made (their modules and service models then
live in the snapshot) and one inference runs (scored only, never recorded as a decision).
After restore, in this order: the AWS clients are dropped and made again
(:func:`credit_api.aws.reset_clients`: the snapshot's connection pools and the credentials its
sessions resolved belong to the environment that took it), the random generators are reseeded,
Powertools' metric state is cleared, the champion pointer is re-read with the new S3 client
(it may have changed since the snapshot) and the new DynamoDB client reads one absent id (its
connection is then open). One log line says a restore happened.

The Lambda Python runtime provides ``snapshot_restore_py``; elsewhere (tests, uvicorn, the
benchmark) it is absent and the hooks are kept here only, run by :func:`run_before_snapshot`
and :func:`run_after_restore`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from credit_api import aws
from credit_api.decision_log import DecisionLogUnavailable, DynamoDecisionLog
from credit_api.model_store import ModelStore
from credit_api.observability import logger, metrics
from credit_api.schema import EXAMPLE_APPLICANT

Hook = Callable[[], None]

BEFORE_SNAPSHOT: list[Hook] = []
AFTER_RESTORE: list[Hook] = []


def _runtime_registrars() -> tuple[Callable[[Hook], Any], Callable[[Hook], Any]] | None:
    """The runtime's decorators, or None outside Lambda (the module exists only there)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return None
    return register_before_snapshot, register_after_restore


RESTORE_MESSAGE = "snapstart restore"
"""The log line after-restore writes: search for it to see restores (docs/runbook.md)."""
WARM_UP_ID = "snapstart-warm-up"
"""The decision id the after-restore hook reads: never a decision's (those are UUIDs)."""
WARM_UP_SECONDS = 1.0
"""No attempt of that read starts later than this: the hook stays far inside Lambda's 10 s."""


def _make_clients(log: Any) -> None:
    """Make the clients a request will use (the store's S3 one is made by its first load)."""
    if isinstance(log, DynamoDecisionLog):
        log.client  # noqa: B018 -- the property makes the client


def _connect(log: Any) -> None:
    """Open the new DynamoDB client's connection with one read of an absent id, so the first
    request after a restore does not pay the connection (a TLS handshake in AWS) and the
    client's first-call set-up. Best effort: an outage is logged, and that request retries."""
    if not isinstance(log, DynamoDecisionLog):
        return
    try:
        with aws.deadline(WARM_UP_SECONDS):
            log.get(WARM_UP_ID)
    except DecisionLogUnavailable as exc:
        logger.warning("snapstart warm-up read failed", extra={"reason": str(exc)})


WARM_UP_EVENT: dict[str, Any] = {
    "resource": "/health",
    "path": "/health",
    "httpMethod": "GET",
    "headers": {"Accept": "application/json"},
    "multiValueHeaders": {"Accept": ["application/json"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/health",
        "httpMethod": "GET",
        "path": "/health",
        "stage": "$default",
    },
    "body": None,
    "isBase64Encoded": False,
}
"""``GET /health`` as API Gateway sends it: one call through the handler before the snapshot,
so Mangum, FastAPI, Powertools and the JSON response path are warm in it. It reads and records
nothing."""


@dataclass(frozen=True)
class WarmUpContext:
    """The Lambda context of the warm-up call (the runtime has no invocation during the hooks)."""

    function_name: str = "snapstart-warm-up"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = "arn:aws:lambda:snapstart:000000000000:function:snapstart-warm-up"
    aws_request_id: str = WARM_UP_ID

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _count_next_call_as_cold() -> None:
    """Powertools counts the first call through its decorators as the cold start (the
    ``ColdStart`` metric, ``cold_start`` in the log); that was the warm-up, so the flags are set
    back and a restored environment's first request is counted, as without SnapStart."""
    from aws_lambda_powertools.logging import logger as powertools_logger
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.is_cold_start = True
    powertools_logger.is_cold_start = True


def warm(store: ModelStore, log: Any = None, handler: Callable[..., Any] | None = None) -> None:
    """Load the model and policy, make the clients, score the example applicant once, and send
    one ``GET /health`` through ``handler``; write nothing."""
    store.current()
    store.settle(store.settings.champion_wait_seconds)
    _make_clients(log)
    model, _policy = store.served()
    model.scorer.score_rows([EXAMPLE_APPLICANT])
    if handler is not None:
        handler(WARM_UP_EVENT, WarmUpContext())
        metrics.clear_metrics()
        _count_next_call_as_cold()


def renew(store: ModelStore, log: Any = None) -> None:
    """Per-environment state after a restore: new clients, fresh seeds, empty metrics, the pointer re-read."""
    started = time.perf_counter()
    renewed = aws.reset_clients()
    random.seed()
    metrics.clear_metrics()
    store.recheck()
    store.current()
    store.settle(store.settings.champion_wait_seconds)
    _connect(log)
    logger.info(
        RESTORE_MESSAGE,
        extra={
            "clients_renewed": renewed,
            "model_version": store.champion_version,
            "restore_hook_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


def install(store: ModelStore, log: Any = None, handler: Callable[..., Any] | None = None) -> None:
    """Register the hooks for ``store`` (and ``log``, ``handler``) here and, in Lambda, with the runtime."""
    before: Hook = lambda: warm(store, log, handler)  # noqa: E731
    after: Hook = lambda: renew(store, log)  # noqa: E731
    BEFORE_SNAPSHOT.append(before)
    AFTER_RESTORE.append(after)
    registrars = _runtime_registrars()
    if registrars is not None:
        registrars[0](before)
        registrars[1](after)


def run_before_snapshot() -> None:
    """Run the before-snapshot hooks in registration order (what the runtime does locally)."""
    for hook in BEFORE_SNAPSHOT:
        hook()


def run_after_restore() -> None:
    """Run the after-restore hooks in registration order."""
    for hook in AFTER_RESTORE:
        hook()
