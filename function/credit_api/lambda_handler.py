"""The Lambda handler around an ASGI app: Mangum behind Powertools.

Every log line carries the Lambda context and API Gateway's request id (as the correlation
id); EMF metrics are flushed once per invocation, with ``ColdStart`` on the first; the X-Ray
segment leaves the response out, so decisions stay out of traces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from credit_api.gateway import HANDLERS
from credit_api.observability import logger, metrics, tracer

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(asgi_app: Any) -> LambdaHandler:
    """The Lambda handler for ``asgi_app`` (tests and the benchmark build one per app)."""
    adapter = Mangum(asgi_app, lifespan="off", custom_handlers=HANDLERS)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """API Gateway (REST payload v1 or HTTP API v2) event in, proxy response out."""
        return adapter(event, context)

    return handler
