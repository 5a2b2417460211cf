"""``credit decisions backfill-indexes`` against moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from credit_api import decision_reads
from typer.testing import CliRunner

from tests.function.test_decision_reads import TABLE, create_table, legacy_put, records
from training.cli import app


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield create_table()


def test_the_backfill_counts_then_fills_then_finds_nothing_left(table: Any) -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    for record in records([now, now]):
        legacy_put(table, record)
    dry = CliRunner().invoke(app, ["decisions", "backfill-indexes", "--table", TABLE, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("2 records missing an index key")
    assert len(decision_reads.missing_index_keys(table, TABLE)) == 2  # a dry run changes nothing
    done = CliRunner().invoke(app, ["decisions", "backfill-indexes", "--table", TABLE])
    assert done.exit_code == 0 and done.output.startswith("2 records given")
    assert decision_reads.missing_index_keys(table, TABLE) == []
