"""The monitoring report's measures on small hand-worked examples, and its statuses at the thresholds."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from credit_api.manifest import Distribution
from credit_api.policy import ScoreScale

from training import monitoring_config as cfg
from training import monitoring_measures as measures
from training import monitoring_outcomes as outcomes
from training.monitoring_config import Thresholds

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def record(days_old: float, **fields: object) -> dict[str, object]:
    at = AS_OF - timedelta(days=days_old)
    return {"created_at": at.isoformat().replace("+00:00", "Z"), "decision": "approve", **fields}


def test_statuses_at_their_thresholds() -> None:
    t = cfg.THRESHOLDS
    assert [cfg.psi_status(v) for v in (None, 0.0999, 0.10, 0.25, 0.2501)] == [
        "insufficient",
        "green",
        "amber",
        "amber",
        "red",
    ]
    ratio = [cfg.low_is_bad(v, t.ratio_green, t.ratio_amber) for v in (0.80, 0.7999, 0.70, 0.6999)]
    assert ratio == ["green", "amber", "amber", "red"]
    assert [cfg.p_value_status(p) for p in (0.05, 0.0499, 0.01, 0.0099)] == ["green", "amber", "amber", "red"]
    assert [cfg.high_is_bad(v, 0.05, 0.10) for v in (0.0499, 0.05, 0.10)] == ["green", "amber", "red"]
    assert cfg.worst(["green", "insufficient", "amber"]) == "amber"
    assert cfg.worst(["insufficient", "insufficient"]) == "insufficient"
    assert cfg.worst(["green", "red", "amber"]) == "red"


def test_characteristic_analysis_gives_each_bins_contribution_to_the_psi() -> None:
    reference = Distribution(kind="categorical", bins=["a", "b"], shares=[0.5, 0.5])
    found = measures.characteristic(reference, ["a", "b", "b", "b"], Thresholds(min_drift_sample=4))
    a, b = found["bins"]
    assert (a["bin"], a["expected"], a["actual"]) == ("a", 0.5, 0.25)
    assert a["contribution"] == pytest.approx(0.25 * math.log(2))  # (0.25 - 0.5) ln(0.25 / 0.5)
    assert b["contribution"] == pytest.approx(0.25 * math.log(1.5))  # (0.75 - 0.5) ln(0.75 / 0.5)
    assert (
        found["psi"]
        == pytest.approx(a["contribution"] + b["contribution"])
        == pytest.approx(0.2747, abs=1e-4)
    )
    assert found["status"] == "red"


def test_numeric_bins_are_named_as_the_monitor_counts_them() -> None:
    reference = Distribution(kind="numeric", bins=[0.0, 10.0, 20.0, 30.0], shares=[0.2, 0.3, 0.5])
    found = measures.characteristic(reference, [5, 15, 15, 25, 99], Thresholds(min_drift_sample=5))
    assert [row["bin"] for row in found["bins"]] == ["< 10", "[10, 20)", ">= 20"]
    assert [row["actual"] for row in found["bins"]] == pytest.approx([0.2, 0.4, 0.4])


def test_a_small_sample_has_no_psi() -> None:
    reference = Distribution(kind="categorical", bins=["a"], shares=[1.0])
    found = measures.characteristic(reference, ["a"] * 99)
    assert found == {"n": 99, "psi": None, "bins": [], "status": "insufficient"}


def test_grade_shares_come_from_the_score_bins_they_overlap() -> None:
    scale = ScoreScale()  # A >= 600, B [580, 600), C [560, 580), D [540, 560), E below
    score = Distribution(kind="numeric", bins=[530.0, 550.0, 590.0, 610.0], shares=[0.2, 0.4, 0.4])
    # [530,550): half D, half E; [550,590): 1/4 D, 1/2 C, 1/4 B; [590,610): half B, half A
    assert measures.grade_reference(score, scale) == pytest.approx([0.2, 0.3, 0.2, 0.2, 0.1])


def test_the_exact_binomial_test_by_hand() -> None:
    # 3 defaults in 10 loans at a predicted 10%: every outcome of 3 or more is at most as likely
    # as 3 itself (P(3) = 0.0574) and none below it is, so p = P(X >= 3) = 1 - P(0) - P(1) - P(2).
    by_hand = 1 - (0.9**10 + 10 * 0.1 * 0.9**9 + 45 * 0.1**2 * 0.9**8)
    assert outcomes.binomial(3, 10, 0.10) == pytest.approx(by_hand) == pytest.approx(0.0702, abs=1e-4)
    assert outcomes.binomial(1, 10, 0.10) == pytest.approx(1.0)


def test_calibration_per_group_tests_observed_against_the_mean_predicted_rate() -> None:
    t = Thresholds(
        min_outcomes=10, min_outcomes_per_class=1, min_group_outcomes=10, performance_window_days=30
    )
    rows = [
        record(60, risk_grade="A", probability_of_default=0.1, outcome={"defaulted": i < 3})
        for i in range(10)
    ]
    rows += [
        record(60, risk_grade="B", probability_of_default=0.1, outcome={"defaulted": False}) for _ in range(5)
    ]
    found = outcomes.calibration(rows, AS_OF, lambda r: r.get("risk_grade"), ["A", "B"], t)
    a, b = found["groups"]
    assert (a["n"], a["defaults"], a["observed_rate"], a["predicted_rate"]) == (
        10,
        3,
        0.3,
        pytest.approx(0.1),
    )
    assert a["p_value"] == pytest.approx(0.0702, abs=1e-4) and a["status"] == "green"
    assert (b["n"], b["p_value"], b["status"]) == (5, None, "insufficient")
    assert found["maturity"] == "mature"


def test_age_band_ratio_leaves_out_small_bands() -> None:
    rows = [record(1, inputs={"age": 22}, decision="approve" if i < 24 else "decline") for i in range(40)]
    rows += [record(1, inputs={"age": 30}, decision="approve" if i < 32 else "review") for i in range(40)]
    rows += [record(1, inputs={"age": 50}, decision="decline") for _ in range(10)]  # under 30: left out
    found = measures.approval_by_band(rows)
    rates = {b["band"]: b["approval_rate"] for b in found["bands"]}
    assert rates == {"under 25": 0.6, "25-39": 0.8, "40-61": 0.0, "62+": None}
    assert found["ratio"] == pytest.approx(0.75) and found["status"] == "amber"


def test_maturity_labels_figures_from_young_loans_immature() -> None:
    t = Thresholds(min_outcomes=20, min_outcomes_per_class=5, performance_window_days=365)
    young = [
        record(100 + i, probability_of_default=i / 40, outcome={"defaulted": i % 4 == 0}) for i in range(40)
    ]
    old = [record(400 + i, probability_of_default=i / 10, outcome={"defaulted": i > 5}) for i in range(10)]
    rows = young + old + [record(10)]
    found = outcomes.maturity(rows, AS_OF, t)
    assert (found["decisions"], found["with_outcome"], found["mature_outcomes"]) == (51, 50, 10)
    assert found["status"] == "insufficient"  # 10 mature outcomes are fewer than 20
    assert outcomes.labelled(rows, AS_OF, t)[1] == "immature"
    performance = outcomes.performance(rows, AS_OF, t)
    assert performance["maturity"] == "immature" and performance["n"] == 50
    more_old = old + [
        record(500 + i, probability_of_default=0.5, outcome={"defaulted": i < 5}) for i in range(10)
    ]
    chosen, basis = outcomes.labelled(young + more_old, AS_OF, t)
    assert basis == "mature" and len(chosen) == 20


def test_auc_and_its_bootstrap_interval() -> None:
    t = Thresholds(
        min_outcomes=4, min_outcomes_per_class=2, performance_window_days=0, bootstrap_resamples=200
    )
    rows = [
        record(1, probability_of_default=p, outcome={"defaulted": d})
        for p, d in ((0.1, False), (0.4, False), (0.35, True), (0.8, True))
    ]
    found = outcomes.performance(rows, AS_OF, t)
    assert found["auc"] == pytest.approx(0.75)  # 3 of the 4 (default, good) pairs ranked right
    assert found["gini"] == pytest.approx(0.5)
    lo, hi = found["auc_interval"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    separated = [record(1, probability_of_default=i / 10, outcome={"defaulted": i >= 5}) for i in range(10)]
    perfect = outcomes.performance(separated, AS_OF, t)
    assert perfect["auc"] == 1.0 and perfect["auc_interval"] == [1.0, 1.0]


def test_weekly_mix_compares_the_latest_complete_week() -> None:
    monday = datetime(2026, 11, 30, tzinfo=UTC)  # ISO week 49 starts
    rows = [
        {"created_at": (monday - timedelta(days=d, hours=1)).isoformat(), "decision": dec}
        for d in range(14)
        for dec in ["approve"] * 8 + ["decline"] * 2
    ]
    rows += [
        {"created_at": (monday - timedelta(days=3)).isoformat(), "decision": "decline"} for _ in range(10)
    ]
    rows.append({"created_at": (monday + timedelta(hours=5)).isoformat(), "decision": "approve"})
    found = measures.volumes(rows, monday + timedelta(days=1), Thresholds(min_week_decisions=50))
    assert [w["week"] for w in found["weeks"]] == ["2026-W47", "2026-W48", "2026-W49"]
    assert found["running_week"] == "2026-W49" and found["latest_complete_week"] == "2026-W48"
    w48 = found["weeks"][1]
    assert (w48["n"], w48["approve"], w48["decline"]) == (80, 56, 24)
    assert found["latest_approve_share_change"] == pytest.approx(0.7 - 0.8)  # W47: 56/70 approved
    assert found["status"] == "red"


def test_versions_are_counted_per_week() -> None:
    rows = [
        record(1, model_version="m2", policy_version="policy-aaaaaaaaaaaa"),
        record(1, model_version="m1"),
    ]
    found = measures.versions(rows, "m2")
    (week,) = found["weeks"]
    assert week["model_versions"] == {"m2": 1, "m1": 1}
    assert week["policy_versions"] == {"policy-aaaaaaaaaaaa": 1, "unversioned": 1}
    assert found["status"] == "amber"
    assert measures.versions(rows[:1], "m2")["status"] == "green"


def test_report_date_bounds_what_the_report_sees() -> None:
    from training import monitoring

    rows = [record(0.5), record(-1)]  # one before the end of 2026-11-30, one after
    report = monitoring.build(rows, monitoring.Champion(None, None), date(2026, 11, 30))
    assert report["decisions"] == 1 and report["as_of"] == "2026-12-01T00:00:00Z"
    assert report["drift"]["status"] == "insufficient"


def test_a_thin_latest_week_has_no_mix_status_but_is_named() -> None:
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    rows = [
        {"created_at": (monday - timedelta(days=d, hours=1)).isoformat(), "decision": "approve"}
        for d in range(14)
    ]
    found = measures.volumes(rows, monday, Thresholds(min_week_decisions=50))
    assert found["running_week"] is None  # the report ends at a Monday 00:00: W48 is complete
    assert found["latest_complete_week"] == "2026-W48"
    assert (found["latest_approve_share_change"], found["status"]) == (None, "insufficient")


def test_an_empty_log_gives_an_insufficient_report_that_still_renders() -> None:
    from training import monitoring

    report = monitoring.build([], monitoring.Champion(None, None), date(2026, 11, 30))
    assert report["status"] == "insufficient"
    assert {line["status"] for line in report["headline"]} == {"insufficient"}
    body_json, body_html = monitoring.rendered(report)
    assert b'"status": "insufficient"' in body_json and b"</html>" in body_html
