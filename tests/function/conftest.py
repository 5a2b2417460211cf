"""Fixtures for the function's tests: apps with their own stores, Lambda handlers, moto AWS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from credit_api.api import create_app
from credit_api.decision_log import SqliteDecisionLog
from credit_api.lambda_handler import make_handler
from credit_api.model_store import ModelStore
from credit_api.observability import metrics
from credit_api.settings import Settings
from fastapi.testclient import TestClient

from tests.support import LambdaContext

BUNDLED = Settings().model_dir
TABLE = "decisions-test"
IDEMPOTENCY = "idempotency-test"
BUCKET = "models-test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """GET routes publish no metrics; Powertools warns about that on each invocation (main silences it)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings("ignore:No application metrics to publish"))


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    """Each test starts with no pending metrics, no model dimension, and a cold start ahead."""
    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    metrics.clear_metrics()
    metrics.clear_default_dimensions()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(decisions_db=tmp_path / "decisions.sqlite3")


@pytest.fixture
def sqlite_log(settings: Settings) -> Iterator[SqliteDecisionLog]:
    log = SqliteDecisionLog(settings.decisions_db)
    yield log
    log.close()


@pytest.fixture
def app(settings: Settings, sqlite_log: SqliteDecisionLog) -> Any:
    return create_app(settings, log=sqlite_log)


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def invoke(app: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Call the Lambda handler (Mangum + Powertools) for ``app`` with an event."""
    handler = make_handler(app)
    return lambda event: handler(event, LambdaContext())


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    import boto3

    client = boto3.client("s3", region_name="eu-west-1")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


@pytest.fixture
def dynamodb(aws: None) -> Any:
    import boto3

    client = boto3.client("dynamodb", region_name="eu-west-1")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "decision_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "decision_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=IDEMPOTENCY,
        KeySchema=[{"AttributeName": "idempotency_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "idempotency_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def s3_store(settings: Settings, s3: Any, **changes: Any) -> ModelStore:
    from dataclasses import replace

    return ModelStore(replace(settings, model_bucket=BUCKET, **changes), s3=s3)


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time: pytest swaps in capsys only for the test call."""

    def write(self, text: str) -> int:
        import sys

        return sys.stdout.write(text)

    def flush(self) -> None:
        import sys

        sys.stdout.flush()


@pytest.fixture
def stdout(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Everything printed during the test (EMF records and JSON logs); call it to read."""
    import logging

    from credit_api.observability import logger

    handlers = [h for h in logger._logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.stream for h in handlers]
    for handler in handlers:  # plain assignment: setStream would flush a stream pytest may have closed
        handler.stream = _CurrentStdout()
    seen: list[str] = []

    def read() -> str:
        seen.append(capsys.readouterr().out)
        return "".join(seen)

    yield read
    for handler, stream in zip(handlers, previous, strict=True):
        handler.stream = stream
