"""MonitorFunction under moto: the template's table and bucket, a decision log with outcomes, the handler.

Checks the keys written (the contract ``GET /monitoring`` reads), that ``latest.json`` is
written last and not at all when a report file fails, and that every call the handler makes
is allowed by its policy, which grants nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import pytest

from infra.template import ROOT, Resolver, function_environment
from tests.stack.aws_calls import allowed, policy_actions, recorded_calls
from tests.stack.emitted import emitted_metrics
from tests.stack.test_permissions import FUNCTION_CODE, NAMES, TRAINING_CODE, code_actions, statements
from tests.support import LambdaContext, load_event, metric_names, metric_values
from tests.training import monitoring_support as support
from training import monitoring
from training.labelled_decisions import SNAPSHOT_KEY

DAY = "2026-11-30"
KEYS = {
    "json": f"reports/monitoring/{DAY}/report.json",
    "html": f"reports/monitoring/{DAY}/report.html",
    "latest": "reports/monitoring/latest.json",
}


def _event() -> dict[str, Any]:
    return {**load_event("retrain"), "time": f"{DAY}T04:30:00Z"}


def _object(storage: Mapping[str, Any], key: str) -> bytes:
    return storage["s3"].get_object(Bucket=storage["names"].bucket, Key=key)["Body"].read()


def test_the_handler_writes_the_days_report_then_the_pointer_with_allowed_calls_only(
    storage: dict[str, Any], logged: list[dict[str, Any]]
) -> None:
    with recorded_calls() as calls:
        answer = monitoring.handler(_event(), LambdaContext())
    latest = json.loads(_object(storage, KEYS["latest"]))
    assert answer == latest
    assert latest["date"] == DAY and latest["html"] == KEYS["html"] and latest["json"] == KEYS["json"]
    assert set(latest) == {"date", "generated_at", "html", "json", "status"}
    report = json.loads(_object(storage, KEYS["json"]))
    assert report["status"] == latest["status"] and report["generated_at"] == latest["generated_at"]
    assert report["decisions"] == len(logged)
    assert report["champion"]["model_version"] == storage["pointer"]["model_version"]
    assert report["performance"]["maturity"] == "immature"  # every loan is younger than 365 days
    assert report["drift"]["scored_by_champion"] >= 100 and report["drift"]["status"] != "insufficient"
    assert _object(storage, KEYS["html"]).decode().startswith("<!DOCTYPE html>")
    puts = [c.params["Key"] for c in calls if c.operation == "PutObject"]
    assert puts == [SNAPSHOT_KEY, KEYS["json"], KEYS["html"], KEYS["latest"]]
    assert all(c.operation != "Scan" for c in calls)  # a year by day, the labelled by outcome time
    assert report["labelled_read"]["full_read"] and report["labelled_read"]["saved"]
    assert report["maturity"]["with_outcome"] == sum(r["outcome"] is not None for r in logged)
    resolver = storage["resolver"]
    policy = statements(resolver, "MonitorFunction")
    denied = [
        c for c in calls if not allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id))
    ]
    assert denied == []
    assert {c.action() for c in calls} == policy_actions(policy)  # every permission used, none missing


def test_the_policy_grants_exactly_the_calls_in_the_monitors_code(template: dict[str, Any]) -> None:
    actions = code_actions([ROOT / "training" / "monitoring.py"], FUNCTION_CODE + TRAINING_CODE)
    assert actions == policy_actions(statements(Resolver(template, names=NAMES), "MonitorFunction"))
    assert not allowed(
        statements(Resolver(template, names=NAMES), "MonitorFunction"),
        "s3:PutObject",
        "arn:aws:s3:::b/models/champion.json",
    )


class FailingHtml:
    """The bucket's client, except that writing the report's HTML fails."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def put_object(self, **params: Any) -> Any:
        if params["Key"].endswith("report.html"):
            raise OSError("connection reset")
        return self._s3.put_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_a_failed_report_write_leaves_no_pointer(
    storage: dict[str, Any], logged: list[dict[str, Any]], short_window: None
) -> None:
    from datetime import date

    names = storage["names"]
    with pytest.raises(OSError):
        monitoring.run_aws(
            FailingHtml(storage["s3"]), storage["dynamodb"], names.bucket, names.table, date(2026, 11, 30)
        )
    listed = storage["s3"].list_objects_v2(Bucket=names.bucket, Prefix="reports/monitoring/")
    assert KEYS["latest"] not in {o["Key"] for o in listed.get("Contents", [])}


@pytest.mark.slow
def test_a_scheduled_event_without_a_time_reports_today(
    storage: dict[str, Any], logged: list[dict[str, Any]], short_window: None
) -> None:
    from datetime import UTC, datetime

    event = {k: v for k, v in _event().items() if k != "time"}
    answer = monitoring.handler(event, LambdaContext())
    assert answer["date"] == datetime.now(UTC).date().isoformat()


def test_every_variable_the_monitor_reads_is_in_its_environment(template: dict[str, Any]) -> None:
    from tests.stack.test_template import LOCAL_ONLY, RUNTIME, _env_names_read

    read = _env_names_read([ROOT / "training" / "monitoring.py"])
    env = function_environment(Resolver(template, names=NAMES), "MonitorFunction")
    assert {"MODEL_BUCKET", "DECISIONS_TABLE", "POWERTOOLS_SERVICE_NAME"} <= read
    assert read - LOCAL_ONLY - RUNTIME <= set(env)
    assert env["POWERTOOLS_SERVICE_NAME"] == "credit-monitor"
    command = template["Resources"]["MonitorFunction"]["Properties"]["ImageConfig"]["Command"]
    assert command == ["training.monitoring.handler"] and callable(monitoring.handler)
    assert (
        template["Resources"]["MonitorFunction"]["Metadata"]
        == template["Resources"]["RetrainFunction"]["Metadata"]
    )


EMIT_METRICS = """
import json, sys
from training import monitoring
monitoring.record_metrics(json.loads(sys.stdin.read()))
monitoring.metrics.flush_metrics(raise_on_empty_metrics=False)
"""


def test_the_days_drift_is_the_metric_the_drift_alarm_watches(
    storage: dict[str, Any], logged: list[dict[str, Any]], short_window: None, template: dict[str, Any]
) -> None:
    monitoring.handler(_event(), LambdaContext())
    report = json.loads(_object(storage, KEYS["json"]))
    psi = monitoring.drift_psi(report)
    assert {"score", "age"} <= set(psi)  # the score and every input with enough recent decisions
    alarm = template["Resources"]["DriftAlarm"]["Properties"]
    records = emitted_metrics(EMIT_METRICS, report, storage["resolver"], "MonitorFunction")
    (record,) = [r for r in records if alarm["MetricName"] in metric_names(r)]
    assert metric_values([record], alarm["MetricName"]) == [pytest.approx(max(psi.values()))]
    (dimension,) = alarm["Dimensions"]
    assert record[dimension["Name"]] == dimension["Value"]
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == template["Parameters"]["MetricsNamespace"]["Default"]
    per_input = {
        r["input"]: metric_values([r], "DriftPsi")[0] for r in records if "DriftPsi" in metric_names(r)
    }
    assert per_input == pytest.approx(psi)


def test_unmeasured_drift_sends_no_figure_so_the_alarm_breaches(
    storage: dict[str, Any], template: dict[str, Any]
) -> None:
    report = monitoring.build(
        support.records(days=200)[:20], monitoring.Champion(None, None), date(2026, 11, 30)
    )
    assert monitoring.drift_psi(report) == {}
    records = emitted_metrics(EMIT_METRICS, report, storage["resolver"], "MonitorFunction")
    names = set().union(*(metric_names(r) for r in records))
    assert "DriftPsiMax" not in names and "MonitoringReports" in names
    assert template["Resources"]["DriftAlarm"]["Properties"]["TreatMissingData"] == "breaching"
