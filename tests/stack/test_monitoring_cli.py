"""``credit monitor --bucket --table`` under moto: the operator's command runs the daily function's read.

Apart from test_monitoring_run.py because that file runs under Python 3.12 with the retrain
image's packages only (``make test-retrain-312``), and the CLI's Typer is a dev tool, not in the
image; ``make test`` runs this one under the dev venv.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.stack.aws_calls import recorded_calls
from tests.stack.test_monitoring_run import DAY, KEYS, _object
from training.cli import app


@pytest.mark.slow
def test_credit_monitor_against_the_bucket_writes_both_copies(
    storage: dict[str, Any], logged: list[dict[str, Any]], short_window: None, tmp_path: Any
) -> None:
    names = storage["names"]
    args = [
        "monitor",
        "--bucket",
        names.bucket,
        "--table",
        names.table,
        "--out",
        str(tmp_path),
        "--date",
        DAY,
    ]
    with recorded_calls() as calls:
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    in_bucket = json.loads(_object(storage, KEYS["latest"]))
    local = json.loads((tmp_path / "monitoring" / "latest.json").read_text())
    assert in_bucket["html"] == KEYS["html"] and local["html"] == f"monitoring/{DAY}/report.html"
    assert in_bucket["status"] == local["status"]
    report = json.loads((tmp_path / local["json"]).read_text())
    assert report == json.loads(_object(storage, KEYS["json"]))  # one report, two copies
    assert report["champion"]["model_version"] == storage["pointer"]["model_version"]
    assert report["decisions"] == len(logged) and report["labelled_read"]["full_read"]
    assert all(c.operation != "Scan" for c in calls)  # the daily function's own read (run_aws)
