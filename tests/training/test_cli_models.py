"""``credit models``: list, history, promote (a directory or a stored version), rollback, refusals."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from credit_api import registry
from credit_api.manifest import MANIFEST_FILE
from credit_api.settings import BUNDLED_MODEL_DIR
from typer.testing import CliRunner

from training import cli_models
from training.cli_models import app

BUCKET = "cli-models-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "MODEL_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        # one client for every command (each real run makes its own; the end-to-end test does)
        monkeypatch.setattr(cli_models, "_s3", lambda: client)
        yield client


def model_dir(tmp_path: Path, version: str) -> Path:
    target = tmp_path / version
    shutil.copytree(BUNDLED_MODEL_DIR, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    (target / MANIFEST_FILE).write_text(json.dumps({**manifest, "model_version": version}))
    return target


def run(*args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--bucket", BUCKET])


def test_promote_list_rollback_and_history(s3: Any, tmp_path: Path) -> None:
    assert run("promote", str(model_dir(tmp_path, "v1"))).exit_code == 0
    promoted = run("promote", str(model_dir(tmp_path, "v2")), "--reason", "better on fresh outcomes")
    assert promoted.exit_code == 0 and "champion: v2" in promoted.output

    listed = run("list")
    assert listed.exit_code == 0
    marked = [line for line in listed.output.splitlines() if line.startswith("*")]
    assert len(marked) == 1 and " v2 " in marked[0]

    rolled = run("rollback", "--reason", "declines doubled")
    assert rolled.exit_code == 0 and "champion: v1" in rolled.output
    again = run("promote", "v2", "--reason", "fixed upstream")  # a stored version, by name
    assert again.exit_code == 0 and "champion: v2" in again.output

    history = run("history", "--json")
    entries = json.loads(history.output)
    assert [(e["action"], e["version"], e["reason"]) for e in entries] == [
        ("promote", "v2", "fixed upstream"),
        ("rollback", "v1", "declines doubled"),
        ("promote", "v2", "better on fresh outcomes"),
        ("promote", "v1", "promoted by hand"),
    ]
    assert all(e["by"].endswith("(credit models)") for e in entries)


def test_refusals_exit_non_zero_and_change_nothing(s3: Any, tmp_path: Path) -> None:
    assert "no champion has been published" in run("history").output
    assert run("rollback", "--reason", "r").exit_code == 1  # nothing to roll back
    assert run("promote", "v9").exit_code == 1
    registry.publish(s3, BUCKET, model_dir(tmp_path, "v1"), by="t", reason="r")
    refused = run("rollback", "--reason", "r")
    assert refused.exit_code == 1 and "replaced no earlier champion" in refused.output
    assert [e["version"] for e in registry.history(s3, BUCKET)] == ["v1"]


def test_help_reads_well() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("list", "history", "promote", "rollback"):
        assert command in result.output
