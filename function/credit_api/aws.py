"""boto3 clients, made on first use.

boto3 costs about 0.2 s to import, so a local run (no bucket, no table) never pays for it,
and the Lambda pays once per cold start. Timeouts are short and retries bounded: a request
waiting on S3 or DynamoDB should fail fast into a 503 rather than hang to the Lambda timeout.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from credit_api.observability import tracer


@cache
def client(service: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client; ``endpoint_url`` points at a local moto server in local runs."""
    import boto3
    from botocore.config import Config

    tracer.patch(["botocore"])
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)
