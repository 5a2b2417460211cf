"""Fixtures for the stack tests: the template, the SAM tool venv, moto accounts built from the template."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.template import ROOT, load

SAM_BIN = ROOT / ".venv-sam" / "bin"
PYTHON_VERSIONS = "3.11.7:3.12.1"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="session")
def sam_bin() -> Path:
    """aws-sam-cli and cfn-lint, installed by ``make sam`` (``make test`` runs it first)."""
    if not (SAM_BIN / "sam").exists():
        pytest.fail(f"{SAM_BIN / 'sam'} is missing: run `make sam`")
    return SAM_BIN


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """Environment for sam, cfn-lint and python3.12: no telemetry, pyenv's 3.12 resolvable, no AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SAM_CLI_TELEMETRY="0", PYENV_VERSION=os.environ.get("PYENV_VERSION", PYTHON_VERSIONS))
    return env


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, with credentials and a region that can reach nothing real."""
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def storage(aws: None, template: dict[str, Any]) -> dict[str, Any]:
    """The template's key, buckets and tables in moto, with data/credit.csv and the bundled champion."""
    import boto3

    from infra.resources import Names, create_storage, with_data_key
    from infra.seed import seed
    from infra.template import Resolver

    names = Names.for_stack("stack-test")
    resolver = with_data_key(
        Resolver(template, names=names.as_refs(), region="us-east-1", stack_name="stack-test"),
        boto3.client("kms"),
    )
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    create_storage(resolver, s3, dynamodb, names)
    pointer = seed(s3, names.bucket)
    return {"names": names, "resolver": resolver, "s3": s3, "dynamodb": dynamodb, "pointer": pointer}


@pytest.fixture
def logged(storage: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """200 days of decisions (outcomes on the approved ones) in the template's decisions table,
    and the MonitorFunction's environment: what the monitor's runs under moto read."""
    from credit_api.decision_log import DynamoDecisionLog

    from infra.template import function_environment
    from tests.training import monitoring_support as support

    records = support.records(days=200)
    DynamoDecisionLog(storage["names"].table, client=storage["dynamodb"]).put_many(records)
    for name, value in function_environment(storage["resolver"], "MonitorFunction").items():
        monkeypatch.setenv(name, value)
    return records


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor's decision read cut to the days ``logged`` holds, plus ten: moto answers each
    Query by walking its whole table, so the template's 372 days x 8 shards, mostly empty days
    here, cost a test about 15 s. test_monitoring_run's first test keeps the template's window."""
    from dataclasses import replace

    from training import monitoring

    monkeypatch.setattr(monitoring, "THRESHOLDS", replace(monitoring.THRESHOLDS, decisions_read_days=210))
