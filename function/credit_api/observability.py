"""Powertools Logger, Metrics and Tracer, created once per process and shared by every module.

Configuration comes from Powertools' own environment variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``LOG_LEVEL``, ``POWERTOOLS_TRACE_DISABLED``); the defaults
below only make a local run work without them.

When tracing is off (``POWERTOOLS_TRACE_DISABLED``, or outside Lambda, where Powertools turns
it off itself) the tracer gets a do-nothing provider instead of the X-Ray recorder: importing
the X-Ray SDK (and the botocore it pulls in) costs about 0.2 s of cold start for nothing. With
tracing on, the stock X-Ray provider is used, and botocore is patched when the first AWS
client is made (see :mod:`credit_api.aws`).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from credit_api.gateway import request_id

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-api"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "LoanDefault"


def tracing_enabled(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Powertools' own rule: on in Lambda (not SAM local) unless POWERTOOLS_TRACE_DISABLED is truthy."""
    if env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not env.get("AWS_SAM_LOCAL")


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class NoTracing(BaseProvider):
    """The tracer's provider when tracing is off: every call is a no-op, nothing is imported."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any):  # type: ignore[override]
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Sequence[str]) -> None: ...
    def patch_all(self) -> None: ...


logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
tracer = (
    Tracer(service=SERVICE, auto_patch=False)
    if tracing_enabled()
    else Tracer(service=SERVICE, auto_patch=False, disabled=True, provider=NoTracing())
)


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the counter ``name`` in this invocation's EMF record."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(value, 3))


class OutsideLambda:
    """ASGI middleware: under uvicorn, do per request what the Lambda handler's decorators do.

    Logs get the request id as correlation id, and each request's metrics are published when
    it ends. Requests that came through Mangum (their scope carries ``aws.event``) are left to
    ``logger.inject_lambda_context`` and ``metrics.log_metrics``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or "aws.event" in scope:
            await self.app(scope, receive, send)
            return
        logger.set_correlation_id(request_id(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()
