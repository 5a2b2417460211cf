"""Favourable reference values: the rules, on frames small enough to check by eye, and on the data."""

import pandas as pd
import pytest
from credit_api.schema import (
    BY_NAME,
    CATEGORICAL,
    EXAMPLE_APPLICANT,
    FEATURE_NAMES,
    NUMERIC,
    TARGET,
    Applicant,
)

from training.data import load
from training.reference import favourable_reference


def _frame(columns: dict[str, list], default: list[int]) -> pd.DataFrame:
    n = len(default)
    data = {name: [EXAMPLE_APPLICANT[name]] * n for name in FEATURE_NAMES}
    data.update(columns)
    data[TARGET] = default
    return pd.DataFrame(data)


def test_lowest_default_rate_among_codes_with_support():
    # lt_0: 2 rows, 0% default (too few); ge_200: 4 rows, 25%; none: 4 rows, 50%
    frame = _frame(
        {"checking_balance": ["lt_0"] * 2 + ["ge_200"] * 4 + ["none"] * 4},
        [0, 0, 1, 0, 0, 0, 1, 1, 0, 0],
    )
    assert favourable_reference(frame, min_support=3)["checking_balance"] == "ge_200"
    assert favourable_reference(frame, min_support=2)["checking_balance"] == "lt_0"


def test_ties_go_to_the_more_common_code_then_schema_order():
    assert list(BY_NAME["housing"].codes) == ["own", "rent", "free"]
    frame = _frame({"housing": ["rent"] * 2 + ["free"] * 4 + ["own"] * 4}, [0] * 10)
    assert favourable_reference(frame, min_support=1)["housing"] == "own"  # same rate and support
    frame = _frame({"housing": ["rent"] * 2 + ["free"] * 5 + ["own"] * 3}, [0] * 10)
    assert favourable_reference(frame, min_support=1)["housing"] == "free"  # same rate, more support


def test_numeric_reference_sits_on_the_low_risk_side():
    months = [6, 12, 18, 24, 30, 36, 42, 48]
    riskier_when_longer = _frame({"months_loan_duration": months}, [0, 0, 0, 0, 1, 1, 1, 1])
    riskier_when_shorter = _frame({"months_loan_duration": months}, [1, 1, 1, 1, 0, 0, 0, 0])
    unrelated = _frame({"months_loan_duration": months}, [0] * 8)
    assert favourable_reference(riskier_when_longer)["months_loan_duration"] == 12  # lower quartile
    assert favourable_reference(riskier_when_shorter)["months_loan_duration"] == 42  # upper quartile
    assert favourable_reference(unrelated)["months_loan_duration"] == 24  # median


def test_deterministic_and_independent_of_row_order():
    frame = load()
    reference = favourable_reference(frame)
    assert favourable_reference(frame.sample(frac=1.0, random_state=3).reset_index(drop=True)) == reference


def test_reference_on_the_data_is_a_valid_applicant_and_follows_the_rule():
    frame = load()
    reference = favourable_reference(frame)
    assert set(reference) == set(FEATURE_NAMES)
    Applicant.model_validate(reference)
    support = max(30, int(0.03 * len(frame)))
    for name in CATEGORICAL:
        stats = frame.groupby(name)[TARGET].agg(["mean", "size"])
        eligible = stats[stats["size"] >= support]
        assert stats.at[reference[name], "mean"] == eligible["mean"].min(), name
    for name in NUMERIC:
        assert isinstance(reference[name], int)
        assert reference[name] in set(frame[name]), name


def test_empty_frame_is_refused():
    with pytest.raises(ValueError, match="empty"):
        favourable_reference(_frame({}, []))
