"""Decision policy and score scale, on cases worked out by hand."""

import itertools
import json
import math

import numpy as np
import pytest
from credit_api.policy import (
    GRADES,
    Decision,
    Policy,
    ScoreScale,
    break_even,
    correct_to_population,
    decide,
    decide_columns,
    decide_many,
    decisions_for,
    expected_profit,
)
from pydantic import ValidationError

# margin 0.06 over 12 months: g = 0.06; p* = 0.06 / (0.06 + 0.45) = 2/17 = 0.1176...
PLAIN = Policy(
    loss_given_default=0.45,
    annual_margin=0.06,
    review_band=0.2,
    sample_default_rate=0.3,
    population_default_rate=None,
    annual_applications=1000,
)
P_STAR = 0.06 / 0.51


def test_break_even_and_expected_profit_by_hand():
    assert break_even(12, PLAIN) == pytest.approx(P_STAR)
    assert break_even(24, PLAIN) == pytest.approx(0.12 / 0.57)
    # 1000 DM, p = 0.1: 0.9 * 60 - 0.1 * 450 = 54 - 45 = 9
    assert expected_profit(0.1, 1000, 12, PLAIN) == pytest.approx(9.0)
    assert expected_profit(P_STAR, 1000, 12, PLAIN) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("probability", "expected"),
    [
        (0.09, "approve"),  # below p* (1 - 0.2) = 0.0941
        (0.095, "review"),
        (P_STAR, "review"),
        (0.14, "review"),  # up to p* (1 + 0.2) = 0.1412
        (0.142, "decline"),
        (0.9, "decline"),
    ],
)
def test_review_band_around_the_break_even(probability, expected):
    assert decide(probability, 1000, 12, PLAIN).decision == expected


def test_band_edges_are_reviews():
    lower, upper = P_STAR * 0.8, P_STAR * 1.2
    assert decide(lower, 1000, 12, PLAIN).decision == "review"
    assert decide(upper, 1000, 12, PLAIN).decision == "review"
    assert decide(np.nextafter(lower, 0), 1000, 12, PLAIN).decision == "approve"
    assert decide(np.nextafter(upper, 1), 1000, 12, PLAIN).decision == "decline"


def test_decisions_for_a_column_mixes_all_three_in_order_and_never_approves_nan():
    lower, upper = P_STAR * 0.8, P_STAR * 1.2
    probabilities = [0.0, np.nextafter(lower, 0), lower, P_STAR, upper, np.nextafter(upper, 1), 1.0, np.nan]
    assert decisions_for(probabilities, [12] * 8, PLAIN).tolist() == [
        "approve",
        "approve",
        "review",
        "review",
        "review",
        "decline",
        "decline",
        "review",
    ]


def test_without_band_positive_expected_profit_is_approved_and_negative_declined():
    policy = PLAIN.model_copy(update={"review_band": 0.0})
    for p in np.linspace(0.001, 0.999, 200):
        decision = decide(float(p), 2500, 18, policy)
        assert decision.decision == ("approve" if decision.expected_profit > 0 else "decline")


def test_longer_term_earns_more_so_tolerates_more_risk():
    assert decide(0.15, 1000, 12, PLAIN).decision == "decline"
    assert decide(0.15, 1000, 36, PLAIN).decision == "approve"  # p* = 0.18 / 0.63 = 0.286


def test_prior_shift_correction_by_hand():
    policy = PLAIN.model_copy(update={"population_default_rate": 0.05})
    # the sample's base rate maps to the population's
    assert correct_to_population(0.3, policy) == pytest.approx(0.05)
    # p = 0.5: odds 1 x (0.05/0.95) / (0.3/0.7) = 0.122807..., p = 14 / 128
    assert correct_to_population(0.5, policy) == pytest.approx(14 / 128)
    assert correct_to_population([0.0, 1.0], policy).tolist() == [0.0, 1.0]
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(correct_to_population(grid, policy)) > 0)
    np.testing.assert_array_equal(correct_to_population(grid, PLAIN), grid)


def test_decision_uses_and_reports_the_corrected_probability():
    policy = PLAIN.model_copy(update={"population_default_rate": 0.05})
    decision = decide(0.3, 1000, 12, policy)
    assert decision.probability_of_default == pytest.approx(0.05)
    assert decision.decision == "approve"  # 0.05 < 0.8 p*; uncorrected 0.3 would be declined
    assert decide(0.3, 1000, 12, PLAIN).decision == "decline"
    assert decision.expected_profit == pytest.approx(1000 * (0.95 * 0.06 - 0.05 * 0.45))
    assert decision.score == round(600 + 20 / math.log(2) * math.log(19 / 50))


def test_score_scale_points():
    scale = ScoreScale()
    assert scale.points(1 / 51) == pytest.approx(600.0)  # good:bad 50:1
    assert scale.points(1 / 101) == pytest.approx(620.0)  # 100:1, odds doubled
    assert scale.points(1 / 26) == pytest.approx(580.0)  # 25:1
    assert scale.points(0.5) == pytest.approx(600 - 20 * math.log2(50))
    assert np.all(np.isfinite(scale.points([0.0, 1.0])))
    assert ScoreScale(base_score=500, base_odds=20, points_to_double_odds=50).points(1 / 41) == pytest.approx(
        550
    )


def test_grades_follow_score_bands_and_are_monotone():
    scale = ScoreScale()
    assert scale.grades([600, 599.9, 580, 579.9, 560, 540, 539.9, -1e9, 1e9]).tolist() == [
        "A",
        "B",
        "B",
        "C",
        "C",
        "D",
        "E",
        "E",
        "A",
    ]
    scores = np.linspace(300, 800, 2001)
    ranks = [GRADES.index(g) for g in scale.grades(scores)]
    assert all(a >= b for a, b in itertools.pairwise(ranks))
    assert set(scale.grades(scores)) == set(GRADES)


def test_decide_many_equals_decide_row_by_row_and_the_columns():
    rng = np.random.default_rng(7)
    probabilities = rng.uniform(0, 1, 300)
    amounts = rng.integers(250, 20000, 300)
    months = rng.integers(4, 73, 300)
    policy = PLAIN.model_copy(update={"population_default_rate": 0.08})
    many = decide_many(probabilities, amounts, months, policy)
    assert len(many) == 300
    for p, a, m, decision in zip(probabilities, amounts, months, many, strict=True):
        assert decide(float(p), float(a), float(m), policy) == decision
    assert {d.decision for d in many} == {"approve", "review", "decline"}
    columns = decide_columns(probabilities, amounts, months, policy)  # what the function serves from
    assert len(columns) == 300
    for field in Decision.model_fields:
        assert getattr(columns, field).tolist() == [getattr(d, field) for d in many], field


def test_decisions_are_json_and_grade_agrees_with_score():
    decisions = decide_many(np.array([0.01, 0.2, 0.7]), [1000, 2000, 3000], [12, 24, 36], PLAIN)
    for decision in decisions:
        data = json.loads(decision.model_dump_json())
        assert set(data) >= {"probability_of_default", "decision", "score", "risk_grade", "expected_profit"}
        assert decision.risk_grade == ScoreScale().grades([decision.score])[0]
    assert [d.score for d in decisions] == sorted((d.score for d in decisions), reverse=True)


@pytest.mark.parametrize("bad", [[-0.1], [1.1], [float("nan")], [float("inf")]])
def test_invalid_probabilities_are_refused(bad):
    with pytest.raises(ValueError, match="probabilities"):
        decide_many(bad, [1000], [12], PLAIN)


@pytest.mark.parametrize(
    "change",
    [
        {"annual_margin": 0.0},
        {"loss_given_default": 0.0},
        {"review_band": 1.0},
        {"population_default_rate": 1.0},
    ],
)
def test_policy_rejects_impossible_values(change):
    with pytest.raises(ValidationError):
        Policy.model_validate({**PLAIN.model_dump(), **change})


def test_policy_rejects_unknown_fields():
    with pytest.raises(ValidationError):
        Policy.model_validate({**PLAIN.model_dump(), "margin": 0.05})
