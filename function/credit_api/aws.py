"""boto3 clients, made on first use, and the bounds that keep every AWS call inside the function's timeout.

boto3 costs about 0.2 s to import, so a local run (no bucket, no table) never pays for it,
and the Lambda pays once per cold start.

Why these numbers (``PredictFunction`` has ``Timeout: 15`` in ``template.yaml``):

- One attempt of a call costs at most ``connect_timeout + read_timeout`` = 1 + 2 = 3 s (a
  hanging endpoint: accepted, never answered). ``read_timeout`` bounds each socket read, not
  the whole answer, which is why a per-request deadline is needed as well.
- ``max_attempts`` = 2 (standard mode: one retry), so a stale keep-alive connection after a
  thawed container is retried once, not turned into a 503.
- A request makes many calls: idempotency lookups, a put, ``get_many`` in up to 10 calls,
  a batch of 1000 in 40 ``BatchWriteItem`` chunks over 8 threads (5 waves, each retrying
  unprocessed items up to 5 times). Bounding calls alone would allow 10 + 5 x 5 sequential
  slots of 3 s each, so each request gets a **deadline**: ``request_seconds`` = 9 s after it
  starts (or earlier when the Lambda context has less time left). No attempt starts after
  the deadline (``before-send`` raises :class:`DeadlineExceeded`), and no retry is made
  whose back-off would sleep past it (``needs-retry``).
- Worst case of a whole request: 9 s + the one attempt in flight at the deadline (3 s) =
  12 s, plus up to 1 s of CPU after it (the bundled model's load at a cold start), leaves
  2 s of the 15 s to answer 503 with ``Retry-After``. :func:`worst_case_seconds` is this
  sum; ``tests/function/test_faults.py`` checks it against the template.

The deadline lives in a context variable (set by :class:`RequestDeadline` for each HTTP
request); threads that work for a request run under :func:`carry`, so they see it too, and
it is spent when the request is answered: no call made for a request starts after its answer.
Background work (the model store's refresh) runs without one: each call is still bounded
by the timeouts and attempts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

FUNCTION_TIMEOUT_SECONDS = 15.0
"""``PredictFunction``'s ``Timeout`` in ``template.yaml`` (a test keeps them equal)."""

CPU_AFTER_DEADLINE_SECONDS = 1.0
"""Work a request may still do after its deadline: loading the bundled model at a cold start."""


@dataclass(frozen=True)
class Bounds:
    """Timeouts for AWS calls; the defaults are production's, tests pass smaller ones."""

    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    max_attempts: int = 2
    request_seconds: float = 9.0

    @property
    def attempt_seconds(self) -> float:
        return self.connect_timeout + self.read_timeout


def worst_case_seconds(bounds: Bounds) -> float:
    """The longest a request can take, all AWS calls failing as slowly as they can."""
    return bounds.request_seconds + bounds.attempt_seconds + CPU_AFTER_DEADLINE_SECONDS


class DeadlineExceeded(Exception):
    """The request's time for AWS calls is up: answer now (a 503) instead of calling again."""


@dataclass
class _Budget:
    ends: float
    """``time.monotonic()`` after which no attempt starts; ``-inf`` once the request is over."""


_budget: ContextVar[_Budget | None] = ContextVar("aws_budget", default=None)


def remaining() -> float | None:
    """Seconds left before this request's deadline; ``None`` outside a request."""
    budget = _budget.get()
    return None if budget is None else budget.ends - time.monotonic()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """AWS calls made inside (in this context) stop starting ``seconds`` from now.

    When the block ends the deadline is spent, also for work carried into other threads: a
    batch chunk still queued when its request was answered (a 503) is never written after it.
    """
    budget = _Budget(time.monotonic() + seconds)
    token = _budget.set(budget)
    try:
        yield
    finally:
        budget.ends = float("-inf")
        _budget.reset(token)


def carry(work: Callable[..., T]) -> Callable[..., T]:
    """``work`` wrapped to run in a copy of the caller's context (its deadline), for thread pools."""
    context = copy_context()
    return lambda *args: context.copy().run(work, *args)


class RequestDeadline:
    """ASGI middleware: each HTTP request gets its deadline for AWS calls.

    In Lambda it is the sooner of ``bounds.request_seconds`` and the invocation's remaining
    time less one attempt and the time to answer, so a shorter function timeout is honoured.
    """

    def __init__(self, app: Any, bounds: Bounds) -> None:
        self.app = app
        self.bounds = bounds

    def budget(self, scope: dict[str, Any]) -> float:
        seconds = self.bounds.request_seconds
        context = scope.get("aws.context")
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            left = context.get_remaining_time_in_millis() / 1000
            reserve = self.bounds.attempt_seconds + CPU_AFTER_DEADLINE_SECONDS + 2.0
            seconds = min(seconds, left - reserve)
        return max(seconds, 0.0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with deadline(self.budget(scope)):
            await self.app(scope, receive, send)


def error_code(exc: BaseException) -> str:
    """What went wrong with an AWS call: the service's error code, else the exception's class name.

    botocore's ``ClientError`` carries ``response["Error"]["Code"]``; connection errors and
    timeouts (``EndpointConnectionError``, ``ReadTimeoutError``...) carry no response at all.
    """
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else exc.__class__.__name__


S3_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
"""What S3 answers for an absent key (a role without ``s3:ListBucket`` gets 403 instead)."""
S3_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
"""What S3 answers when a conditional write loses (409 when two conditional writes race)."""


def is_conditional_failure(exc: BaseException) -> bool:
    """A write refused by its condition (the item exists): an answer, not an outage.

    A cancelled transaction counts only when every cancelled item failed its condition.
    """
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
    codes = {r.get("Code") for r in reasons if isinstance(r, dict)} - {"None", None}
    return codes == {"ConditionalCheckFailed"}


def _refuse_after_deadline(**_: Any) -> None:
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded("the request's deadline for AWS calls has passed")


def _bounded_retry(standard: Callable[..., Any]) -> Callable[..., Any]:
    """botocore's retry decision, refused when its back-off would sleep past the deadline."""

    def needs_retry(**kwargs: Any) -> Any:
        delay = standard(**kwargs)
        left = remaining()
        if delay is None or delay is False or left is None:
            return delay
        return delay if delay < left else False

    return needs_retry


def bound(client: Any, bounds: Bounds) -> Any:
    """Make ``client`` (standard retry mode) honour the request deadline; returns it."""
    from botocore.retries import standard

    events = client.meta.events
    name = client.meta.service_model.service_id.hyphenize()
    events.unregister(f"needs-retry.{name}", unique_id=f"retry-config-{name}")
    handler = standard.register_retry_handler(client, max_attempts=bounds.max_attempts)
    events.unregister(f"needs-retry.{name}", unique_id=f"retry-config-{name}")
    events.register(f"needs-retry.{name}", _bounded_retry(handler.needs_retry), unique_id=f"bounded-{name}")
    events.register_first(f"before-send.{name}", _refuse_after_deadline, unique_id=f"deadline-{name}")
    return client


_clients: dict[tuple[str, str | None, Bounds], Any] = {}
_clients_lock = threading.Lock()


def client(service: str, endpoint_url: str | None = None, bounds: Bounds = Bounds()) -> Any:
    """A cached boto3 client; ``endpoint_url`` points at a local moto server in local runs.

    Holders (the model store, the decision log) call this on every use instead of keeping the
    client, so :func:`reset_clients` is the one place that renews them all.
    """
    key = (service, endpoint_url, bounds)
    with _clients_lock:
        found = _clients.get(key)
    if found is not None:
        return found
    made = _make(service, endpoint_url, bounds)
    with _clients_lock:
        return _clients.setdefault(key, made)


@cache
def _loader() -> Any:
    """botocore's loader of service models, shared by every session: parsed JSON, no connection
    and no credential, so it survives :func:`reset_clients` and a new client does not re-read it."""
    from botocore.loaders import create_loader

    return create_loader()


def _make(service: str, endpoint_url: str | None, bounds: Bounds) -> Any:
    """A client in a session of its own: credentials and connections are resolved for it alone."""
    import botocore.session
    from botocore.config import Config

    from credit_api.observability import tracer

    tracer.patch(["botocore"])
    config = Config(
        connect_timeout=bounds.connect_timeout,
        read_timeout=bounds.read_timeout,
        retries={"mode": "standard", "total_max_attempts": bounds.max_attempts},
    )
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader())
    made = session.create_client(service, endpoint_url=endpoint_url, config=config)
    return bound(made, bounds)


def reset_clients() -> int:
    """Forget and close every client made so far; returns how many there were.

    After a SnapStart restore the clients in the snapshot carry its connection pools (sockets
    to endpoints that may have moved or timed out long ago) and the credentials their session
    resolved at init. The next :func:`client` call makes a new session, so credentials and
    connections are resolved again in the restored environment.
    """
    with _clients_lock:
        dropped = list(_clients.values())
        _clients.clear()
    for old in dropped:
        with suppress(Exception):  # a socket of the snapshot may be dead already: closing is best effort
            old.close()
    return len(dropped)
