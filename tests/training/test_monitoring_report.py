"""The monitoring report end to end: a local decision log through ``credit monitor`` to HTML and JSON."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from credit_api.decision_log import SqliteDecisionLog
from typer.testing import CliRunner

from tests.training import monitoring_support as support
from training import monitoring
from training.cli import app

DAY = date(2026, 11, 30)


@pytest.fixture(scope="module")
def logged() -> list[dict[str, Any]]:
    return support.records(repeat=3)


def _db(path: Path, records: list[dict[str, Any]]) -> Path:
    log = SqliteDecisionLog(path)
    log.put_many([{**r, "outcome": None} for r in records])
    for r in records:
        if r["outcome"] is not None:
            log.record_outcome(r["decision_id"], r["outcome"])
    log.close()
    return path


def _champion() -> monitoring.Champion:
    model = support.champion()
    return monitoring.Champion(model.version, model.manifest)


def test_credit_monitor_writes_the_report_and_then_the_pointer(
    tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    db = _db(tmp_path / "decisions.sqlite3", logged)
    result = CliRunner().invoke(
        app, ["monitor", "--db", str(db), "--out", str(tmp_path / "r"), "--date", "2026-11-30"]
    )
    assert result.exit_code == 0, result.output
    latest = json.loads((tmp_path / "r" / "monitoring" / "latest.json").read_text())
    assert set(latest) == {"date", "generated_at", "html", "json", "status"}
    assert latest["date"] == "2026-11-30"
    assert latest["html"] == "monitoring/2026-11-30/report.html"
    assert latest["json"] == "monitoring/2026-11-30/report.json"
    report = json.loads((tmp_path / "r" / latest["json"]).read_text())
    assert report["status"] == latest["status"] in ("green", "amber", "red", "insufficient")
    assert report["decisions"] == len(logged)
    assert report["maturity"]["with_outcome"] == sum(r["outcome"] is not None for r in logged)
    assert (tmp_path / "r" / latest["html"]).read_text().startswith("<!DOCTYPE html>")
    assert "Outcome maturity" in result.output


def test_credit_monitor_refuses_a_missing_log_and_a_bad_date(tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        app, ["monitor", "--db", str(tmp_path / "none.sqlite3"), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 2 and "Invalid value" in missing.output
    db = _db(tmp_path / "d.sqlite3", support.records()[:5])
    bad = CliRunner().invoke(
        app, ["monitor", "--db", str(db), "--out", str(tmp_path), "--date", "30/11/2026"]
    )
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_a_calibrated_log_is_green_and_every_measure_is_there(logged: list[dict[str, Any]]) -> None:
    report = monitoring.build(logged, _champion(), DAY)
    assert {line["measure"] for line in report["headline"]} == set(monitoring.HEADLINE)
    assert report["performance"]["maturity"] == "mature"
    assert report["performance"]["auc"] is not None
    assert report["calibration_by_grade"]["status"] in ("green", "amber")
    assert report["fairness"]["overall"]["ratio"] is not None
    assert report["drift"]["inputs"].keys() >= {"age", "amount", "checking_balance"}
    for contribution in report["drift"]["inputs"]["age"]["bins"] or []:
        assert set(contribution) == {"bin", "expected", "actual", "contribution"}


def test_drift_shows_in_the_bins_that_moved(logged: list[dict[str, Any]]) -> None:
    """Recent applicants all aged 70: the age PSI is red and its top bin is the oldest one."""
    shifted = [{**r, "inputs": {**r["inputs"], "age": 70}} for r in logged]
    report = monitoring.build(shifted, _champion(), DAY)
    age = report["drift"]["inputs"]["age"]
    assert age["status"] == "red" and report["drift"]["status"] == "red" and report["status"] == "red"
    top = max(age["bins"], key=lambda b: b["contribution"])
    assert top["bin"].startswith(">=") and top["actual"] == 1.0
    assert sum(b["contribution"] for b in age["bins"]) == pytest.approx(age["psi"])


def test_miscalibrated_outcomes_turn_the_binomial_test_red(logged: list[dict[str, Any]]) -> None:
    doubled = [
        {**r, "outcome": {**r["outcome"], "defaulted": True}} if r["outcome"] and i % 5 == 0 else r
        for i, r in enumerate(logged)
    ]
    report = monitoring.build(doubled, _champion(), DAY)
    assert report["calibration_by_grade"]["status"] == "red"
    worst = min(
        (g for g in report["calibration_by_grade"]["groups"] if g["p_value"] is not None),
        key=lambda g: g["p_value"],
    )
    assert worst["observed_rate"] > worst["predicted_rate"]


def test_immature_outcomes_are_provisional_in_json_and_html() -> None:
    young = support.records(days=200)
    report = monitoring.build(young, _champion(), DAY)
    assert report["maturity"]["mature_outcomes"] == 0 and report["maturity"]["status"] == "insufficient"
    assert report["performance"]["maturity"] == "immature"
    assert report["calibration_by_grade"]["maturity"] == "immature"
    html = monitoring.rendered(report)[1].decode()
    assert "Provisional" in html and "not final" in html
    line = next(h for h in report["headline"] if h["measure"] == "performance")
    assert "PROVISIONAL" in line["summary"]


def test_the_html_obeys_the_pages_content_security_policy(logged: list[dict[str, Any]]) -> None:
    hostile = [{**r, "model_version": '<script>alert(1)</script>"'} for r in logged[:200]] + logged[200:]
    report = monitoring.build(hostile, _champion(), DAY)
    html = monitoring.rendered(report)[1].decode()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    images = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert images and all(re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/=]+", uri) for uri in images)
    without_images = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', "", html)
    assert not re.search(r"//|url\(|@import", without_images)
    tags = set(re.findall(r"<([a-z0-9]+)", html.lower()))
    assert "table" in tags and not {"link", "iframe", "object", "embed", "base", "form"} & tags
    assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    head, body = html.split("</head>", 1)
    assert "<style>" in head and "<style" not in body


def test_the_shadow_challenger_is_compared_but_does_not_set_the_overall_status(
    logged: list[dict[str, Any]],
) -> None:
    """Every tenth approval declined by the shadow: an amber swap set; the report's status stays as it was."""
    shadowed = [
        {
            **r,
            "shadow": {
                "model_version": "challenger-1",
                "probability_of_default": r["probability_of_default"],
                "decision": "decline" if r["decision"] == "approve" and i % 10 == 0 else r["decision"],
            },
        }
        for i, r in enumerate(logged)
    ]
    plain = monitoring.build(logged, _champion(), DAY)
    report = monitoring.build(shadowed, _champion(), DAY, shadow=monitoring.local_shadow(shadowed))
    found = report["shadow"]
    approvals = [i for i, r in enumerate(logged) if r["decision"] == "approve"]
    swapped = sum(1 for i in approvals if i % 10 == 0)
    assert found["shadow_version"] == "challenger-1" and found["n"] == len(logged)
    assert found["swaps"]["champion_approves_shadow_declines"] == swapped
    assert found["swap_share"] == pytest.approx(swapped / len(logged))
    assert found["agreement"] == pytest.approx(1 - swapped / len(logged))
    assert found["auc"]["champion"] == found["auc"]["shadow"]  # same probabilities on the same loans
    assert "swap_rows" not in found
    assert 0.05 <= found["swap_share"] < 0.10 and found["status"] == "amber"
    assert report["status"] == plain["status"]
    assert "challenger-1" in monitoring.rendered(report)[1].decode()
    assert monitoring.local_shadow(logged) is None


def test_records_with_missing_or_odd_fields_are_skipped_not_fatal(logged: list[dict[str, Any]]) -> None:
    odd = [
        {"decision_id": "no-time"},
        {"created_at": "yesterday", "decision": "approve"},
        {"created_at": "2026-11-29T10:00:00Z", "decision": "maybe", "inputs": None, "outcome": "yes"},
        {
            "created_at": "2026-11-29T10:00:00",
            "decision": "approve",
            "inputs": {"age": "old"},
            "risk_grade": "Z",
        },
        {**logged[-1], "probability_of_default": float("nan"), "outcome": {"defaulted": "true"}},
        {**logged[-1], "shadow": {"model_version": "s", "decision": "approve"}},
    ]
    report = monitoring.build(logged + odd, _champion(), DAY, shadow=monitoring.local_shadow(logged + odd))
    body_json, body_html = monitoring.rendered(report)
    assert json.loads(body_json)["decisions"] == len(logged) + 4  # two have no readable time
    valid_copy = logged[-1]["outcome"] is not None  # the last odd record keeps a real outcome
    assert report["maturity"]["with_outcome"] == sum(r["outcome"] is not None for r in logged) + valid_copy
    assert report["shadow"] is None
    assert body_html.decode().endswith("</html>")
