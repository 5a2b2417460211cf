"""The economic evaluation on tiny frames whose money can be counted by hand."""

import json

import numpy as np
import pandas as pd
import pytest
from credit_api.policy import Policy

from training import config
from training.economics import CURVE_FILE, REPORT_FILE, RESULT_FILE, evaluate, write_report

# 12-month loans, margin 0.12: a good loan earns 12% of its amount, a bad one loses 45%;
# break-even p* = 0.12 / 0.57 = 0.2105.
POLICY = Policy(
    loss_given_default=0.45,
    annual_margin=0.12,
    review_band=0.0,
    sample_default_rate=0.5,
    population_default_rate=None,
    annual_applications=1000,
)
FRAME = pd.DataFrame(
    {
        "amount": [1000, 2000, 1000, 500],
        "months_loan_duration": [12, 12, 12, 12],
        "default": [0, 1, 0, 1],
    }
)
# approve (good, +120), decline (bad, 900 avoided), decline (good, 120 forgone), approve (bad, -225)
PROBABILITIES = np.array([0.1, 0.5, 0.6, 0.05])


def test_money_counted_by_hand():
    result = evaluate(PROBABILITIES, FRAME, POLICY, seed=1, resamples=0)
    point, scaled = result["point"], result["scaled"]
    assert point["baseline_profit_per_application"] == pytest.approx((120 - 900 + 120 - 225) / 4)
    assert point["profit_per_application"] == pytest.approx((120 - 225) / 4)
    assert point["losses_avoided_per_application"] == pytest.approx(900 / 4)
    assert point["profit_forgone_per_application"] == pytest.approx(120 / 4)
    assert point["net_savings_per_application"] == pytest.approx(195.0)
    assert scaled["net_savings_per_1000"] == pytest.approx(195_000.0)
    assert scaled["net_savings_annual"] == pytest.approx(195.0 * 1000)
    assert point["approval_rate"] == pytest.approx(0.5)
    assert point["review_rate"] == 0.0
    assert point["share_of_defaulters_declined"] == pytest.approx(0.5)
    assert point["default_rate_booked"] == pytest.approx(0.5)


def test_accuracy_and_uci_cost_by_hand():
    point = evaluate(PROBABILITIES, FRAME, POLICY, seed=1, resamples=0)["point"]
    # at p = 0.5: rows 1 and 2 right, rows 3 (good called bad) and 4 (bad called good) wrong
    assert point["accuracy_at_half"] == pytest.approx(0.5)
    assert point["decision_accuracy"] == pytest.approx(0.5)
    assert point["baseline_accuracy"] == pytest.approx(0.5)
    # policy: row 4 bad approved (5) + row 3 good declined (1) over 4 applications
    assert point["uci_cost_per_application"] == pytest.approx(6 / 4)
    assert point["uci_cost_baseline"] == pytest.approx(10 / 4)
    assert point["uci_cost_optimal_threshold"] == pytest.approx(6 / 4)  # declines p > 1/6: rows 2, 3


def test_reviews_count_as_declined_and_the_alternative_is_reported():
    policy = POLICY.model_copy(update={"review_band": 0.5})  # review 0.105 <= p <= 0.316
    frame = pd.concat([FRAME, pd.DataFrame({"amount": [1000], "months_loan_duration": [12], "default": [0]})])
    probabilities = np.append(PROBABILITIES, 0.2)  # a good 1000 DM loan in the band
    point = evaluate(probabilities, frame, policy, seed=1, resamples=0)["point"]
    assert point["review_rate"] == pytest.approx(1 / 5)
    assert point["profit_forgone_per_application"] == pytest.approx((120 + 120) / 5)
    assert point["net_savings_per_application"] == pytest.approx((900 - 240) / 5)
    assert point["net_savings_reviews_approved_per_application"] == pytest.approx((900 - 120) / 5)
    assert point["share_of_defaulters_declined_reviews_approved"] == pytest.approx(0.5)


def test_population_weights_by_hand():
    # population 10% defaults, frame 50%: bad loans weigh 0.2, good loans 1.8. The correction
    # (sample 50% -> 10%) moves 0.9 to 0.5 and 0.8 to 0.3077: both still declined.
    policy = POLICY.model_copy(update={"population_default_rate": 0.1})
    probabilities = np.array([0.1, 0.9, 0.8, 0.05])
    result = evaluate(probabilities, FRAME, policy, seed=1, resamples=0)
    point = result["point"]
    assert point["baseline_profit_per_application"] == pytest.approx(
        (1.8 * 120 - 0.2 * 900 + 1.8 * 120 - 0.2 * 225) / 4
    )
    assert point["losses_avoided_per_application"] == pytest.approx(0.2 * 900 / 4)
    assert point["profit_forgone_per_application"] == pytest.approx(1.8 * 120 / 4)
    assert point["net_savings_per_application"] == pytest.approx(-9.0)
    assert point["default_rate_baseline"] == pytest.approx(0.1)
    assert point["approval_rate"] == pytest.approx((1.8 + 0.2) / 4)
    assert point["share_of_defaulters_declined"] == pytest.approx(0.5)
    assert point["accuracy_at_half"] == pytest.approx(0.5)  # accuracy stays on the sample


def test_criteria_verdicts_and_assumptions():
    criteria = {
        c["criterion"]: c for c in evaluate(PROBABILITIES, FRAME, POLICY, seed=1, resamples=0)["criteria"]
    }
    assert criteria["defaulters down at least 10%"]["met"] is True
    assert criteria["accuracy over 70%"]["met"] is False
    money = criteria["more than $1.2M saved"]
    assert money["value"] == pytest.approx(195.0 * 1000 / config.DM_PER_USD)
    assert money["met"] is False
    assert money["applications_needed"] == pytest.approx(1_200_000 / (195.0 / config.DM_PER_USD))
    assert "1000 applications a year" in money["assumptions"] and "DM" in money["assumptions"]
    assert "70" in criteria["accuracy over 70%"]["assumptions"]


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(1.2, 2.8, n)
    frame = pd.DataFrame(
        {
            "amount": rng.integers(250, 15000, n),
            "months_loan_duration": rng.integers(6, 60, n),
            "default": (rng.uniform(size=n) < probabilities).astype(int),
        }
    )
    return probabilities, frame


def test_calibrated_probabilities_save_money_and_intervals_cover_the_estimate():
    probabilities, frame = _calibrated(3000, seed=3)
    result = evaluate(probabilities, frame, POLICY, seed=11, resamples=400)
    point, ci = result["point"], result["ci"]
    assert ci["net_savings_per_application"][0] > 0
    for name, (lo, hi) in ci.items():
        assert lo <= point[name] <= hi, name
    assert result["scaled"]["net_savings_annual_ci"] == pytest.approx(
        [v * POLICY.annual_applications for v in ci["net_savings_per_application"]]
    )


def test_bootstrap_is_reproducible_for_a_seed():
    probabilities, frame = _calibrated(500, seed=5)
    first = evaluate(probabilities, frame, POLICY, seed=42, resamples=200)
    assert evaluate(probabilities, frame, POLICY, seed=42, resamples=200)["ci"] == first["ci"]
    assert evaluate(probabilities, frame, POLICY, seed=43, resamples=200)["ci"] != first["ci"]


def test_curve_ends_at_approve_everyone_and_starts_at_nothing():
    probabilities, frame = _calibrated(500, seed=6)
    result = evaluate(probabilities, frame, POLICY, seed=1, resamples=0)
    curve = result["curve"]
    assert curve["profit_per_1000"][0] == 0.0
    assert curve["profit_per_1000"][-1] == pytest.approx(result["scaled"]["baseline_profit_per_1000"])
    assert curve["cutoffs"] == sorted(curve["cutoffs"])


def test_sensitivity_covers_the_uncertain_assumptions():
    table = evaluate(PROBABILITIES, FRAME, POLICY, seed=1, resamples=0)["sensitivity"]
    assert {row["population_default_rate"] for row in table} >= {None, 0.05}
    assert POLICY.annual_margin in {row["annual_margin"] for row in table}


@pytest.mark.parametrize(
    ("probabilities", "frame", "message"),
    [
        (PROBABILITIES[:3], FRAME, "3 probabilities for 4 rows"),
        (np.array([0.1, np.nan, 0.2, 0.3]), FRAME, "finite"),
        (np.array([0.1, 1.2, 0.2, 0.3]), FRAME, "within"),
        (PROBABILITIES, FRAME.drop(columns="amount"), "lacks columns"),
        (PROBABILITIES, FRAME.assign(default=[0, 2, 0, 1]), "0 or 1"),
    ],
)
def test_bad_input_is_a_clear_error(probabilities, frame, message):
    with pytest.raises(ValueError, match=message):
        evaluate(probabilities, frame, POLICY, seed=1, resamples=0)


def test_write_report(tmp_path):
    probabilities, frame = _calibrated(400, seed=8)
    result = evaluate(probabilities, frame, config.DEFAULT_POLICY, seed=1, resamples=100)
    path = write_report(result, tmp_path / "reports", model="test model")
    assert path == tmp_path / "reports" / REPORT_FILE
    text = path.read_text()
    for needle in (
        "Net savings per 1000",
        "defaulters down at least 10%",
        "more than $1.2M saved",
        CURVE_FILE,
    ):
        assert needle in text
    assert (tmp_path / "reports" / CURVE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "reports" / RESULT_FILE).read_text())["n"] == 400


def test_report_json_is_strict_when_nothing_is_approved(tmp_path):
    # every probability far above break-even: no booked loans, so their default rate is undefined
    result = evaluate(np.full(4, 0.99), FRAME, POLICY, seed=1, resamples=50)
    assert result["point"]["approval_rate"] == 0.0
    write_report(result, tmp_path)
    data = json.loads((tmp_path / RESULT_FILE).read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["point"]["default_rate_booked"] is None


def test_grade_table_accounts_for_every_application():
    probabilities, frame = _calibrated(2000, seed=9)
    grades = evaluate(probabilities, frame, POLICY, seed=1, resamples=0)["grades"]
    assert [g["grade"] for g in grades] == ["A", "B", "C", "D", "E"]
    assert sum(g["applications"] for g in grades) == 2000
    assert sum(g["share"] for g in grades) == pytest.approx(1.0)
    populated = [g for g in grades if g["applications"] >= 50]
    rates = [g["default_rate"] for g in populated]
    assert rates == sorted(rates) and len(populated) >= 3  # calibrated: worse grade, more defaults
