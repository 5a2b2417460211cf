"""End to end on the local stack (a moto *server*, as ``make local-stack`` runs it): decisions and
outcomes through the function, a retrain that promotes, the function serving the new champion
after its refresh, a rollback through the ops function, the function serving the old one again,
and the history (ops event and ``credit models history``) showing all of it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.template import Resolver, function_environment, load
from tests.stack.test_retrain import record_fresh_outcomes, trainer
from tests.support import LambdaContext, load_event

pytestmark = pytest.mark.slow
REFRESH_SECONDS = "0.2"


def served(handler: Any, until: Any, timeout: float = 30.0) -> dict[str, Any]:
    """``/health`` of the function, asked until ``until(health)`` holds (the refresh is in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        response = handler(load_event("health"), LambdaContext())
        health = json.loads(response["body"])
        if until(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def test_promote_serve_roll_back_serve_the_old_one_and_the_history_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from credit_api import ops
    from credit_api.api import create_app
    from credit_api.main import make_handler
    from credit_api.settings import Settings

    from infra.local_stack import clients, running
    from training import cli_models, retrain

    with running(port=0) as stack:
        for name, value in stack.environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MODEL_REFRESH_SECONDS", REFRESH_SECONDS)
        bucket, seeded = stack.names.bucket, stack.pointer
        function = make_handler(create_app(Settings.from_env()))
        health = served(function, lambda h: h["serving"] == "champion")
        assert health["source"] == f"s3://{bucket}/{seeded['key']}"

        record_fresh_outcomes(function, 12, seed=5)  # decisions, then their outcomes
        s3, dynamodb = clients(stack.endpoint_url)
        settings = retrain.RetrainSettings(bucket=bucket, table=stack.names.table)
        result = retrain.retrain(s3, dynamodb, settings, trainer=trainer("good"))
        assert result.verdict == "promoted", result.comparison.reason
        assert result.outcomes_used == 12 and result.comparison.basis == "cross-validation"

        promoted = result.pointer or {}
        health = served(function, lambda h: h["model_version"] == "challenger-good")
        assert health["source"] == f"s3://{bucket}/{promoted['key']}"
        decision = function(load_event("predict"), LambdaContext())
        assert json.loads(decision["body"])["model_version"] == "challenger-good"

        resolver = Resolver(load(), names=stack.names.as_refs())
        for name, value in function_environment(resolver, "OpsFunction").items():
            monkeypatch.setenv(name, value)
        answer = ops.handler(load_event("rollback"), LambdaContext(function_name="OpsFunction"))
        assert answer["status"] == 200, answer
        assert answer["champion"]["key"] == seeded["key"]

        health = served(function, lambda h: h["source"] == f"s3://{bucket}/{seeded['key']}")
        assert health["source"] == f"s3://{bucket}/{seeded['key']}"
        assert health["serving"] == "champion" and health["last_refresh_error"] is None

        listed = ops.handler({"action": "history"}, LambdaContext(function_name="OpsFunction"))
        entries = [(e["action"], e["key"], e["previous"]) for e in listed["entries"]]
        assert entries == [
            ("rollback", seeded["key"], "challenger-good"),
            ("promote", promoted["key"], seeded["model_version"]),
            ("promote", seeded["key"], None),
        ]
        promotion = listed["entries"][1]
        assert promotion["by"] == f"retrain:{result.run_id}"
        assert promotion["report_key"] == f"reports/retrain/{result.run_id}/retrain.json"
        report = json.loads(s3.get_object(Bucket=bucket, Key=promotion["report_key"])["Body"].read())
        assert report["verdict"] == "promoted" and report["pointer"]["key"] == promoted["key"]

        printed = CliRunner().invoke(cli_models.app, ["history", "--bucket", bucket])
        assert printed.exit_code == 0, printed.output
        lines = [line for line in printed.output.splitlines() if not line.startswith(" ")]
        assert [line.split()[1] for line in lines] == ["rollback", "promote", "promote"]
        assert load_event("rollback")["reason"] in printed.output
