"""Reason codes: exact on a hand-written linear model, and the rules on any model honouring the contract."""

import json
from pathlib import Path

import numpy as np
import pytest
from credit_api import age_rule
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.reasons import AGE_PROTECTED_FROM, MAX_REASONS, MIN_FALL, message, notices, principal_reasons
from credit_api.schema import BY_NAME, CATEGORICAL, EXAMPLE_APPLICANT, FEATURE_NAMES, NUMERIC
from credit_api.scoring import Scorer

from tests.economics import linear_onnx
from training.data import load

MODEL_DIR = Path(__file__).resolve().parents[2] / "function" / "model"

CODED = {
    "checking_balance": {"lt_0": 1.0, "0_to_200": 0.6, "ge_200": 0.2},
    "credit_history": {"delayed": 0.8, "repaid": 0.3},
    "savings_balance": {"lt_100": 0.5, "100_to_500": 0.3},
    "purpose": {"education": 0.4, "car_new": 0.25},
    "phone": {"no": 0.01},
}
NUMERIC_WEIGHTS = {"months_loan_duration": 0.03, "age": 0.02, "amount": 0.0001}
INTERCEPT = -2.0
# "none_or_all_repaid" is longer than any code in the rows below: the batched feed must not truncate it.
REFERENCE = {
    **EXAMPLE_APPLICANT,
    "checking_balance": "none",
    "credit_history": "none_or_all_repaid",
    "savings_balance": "ge_1000",
    "purpose": "car_used",
    "months_loan_duration": 12,
    "age": 30,
    "amount": 1000,
    "phone": "yes",
}
APPLICANT = {
    **EXAMPLE_APPLICANT,
    "checking_balance": "lt_0",
    "credit_history": "delayed",
    "savings_balance": "100_to_500",
    "purpose": "car_new",
    "months_loan_duration": 36,
    "age": 46,
    "amount": 1000,
    "phone": "no",
}


@pytest.fixture(scope="module")
def linear() -> Scorer:
    return linear_onnx.scorer(CODED, NUMERIC_WEIGHTS, INTERCEPT)


@pytest.fixture(scope="module")
def committed() -> tuple[Scorer, dict]:
    manifest = Manifest.model_validate_json((MODEL_DIR / MANIFEST_FILE).read_text())
    return Scorer.from_bytes((MODEL_DIR / MODEL_FILE).read_bytes()), dict(manifest.reason_reference)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    frame = load()[list(FEATURE_NAMES)]
    return [{k: v if isinstance(v, str) else int(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _fall(row: dict, name: str) -> float:
    changed = {**row, name: REFERENCE[name]}
    p = linear_onnx.probability
    return p(row, CODED, NUMERIC_WEIGHTS, INTERCEPT) - p(changed, CODED, NUMERIC_WEIGHTS, INTERCEPT)


def test_falls_and_order_computed_by_hand(linear):
    (reasons,) = principal_reasons(linear, [APPLICANT], None, REFERENCE)
    expected = sorted(
        (name for name in FEATURE_NAMES if _fall(APPLICANT, name) >= MIN_FALL),
        key=lambda n: -_fall(APPLICANT, n),
    )[:MAX_REASONS]
    # logit above the reference: checking 1.0, credit 0.8, months 0.72, age 0.32, savings 0.3, purpose 0.25
    assert expected == ["checking_balance", "credit_history", "months_loan_duration", "age"]
    assert [r.input for r in reasons] == expected
    for reason in reasons:
        assert reason.probability_fall == pytest.approx(_fall(APPLICANT, reason.input), abs=1e-6)
        assert reason.label == BY_NAME[reason.input].label
    assert reasons[0].message == "Balance of checking account is below 0 DM (overdrawn)"
    assert reasons[2].message == "Loan term of 36 months is long"


def test_only_positive_falls_above_the_threshold(linear):
    # below-reference amount lowers the risk: never a reason; phone 'no' moves p by less than MIN_FALL here
    row = {**REFERENCE, "amount": 400, "phone": "no", "checking_balance": "0_to_200"}
    assert 0 < _fall(row, "phone") < MIN_FALL and _fall(row, "amount") < 0
    (reasons,) = principal_reasons(linear, [row], None, REFERENCE)
    assert [r.input for r in reasons] == ["checking_balance"]


def test_age_is_never_cited_from_62(linear):
    heavy_age = linear_onnx.scorer(CODED, {**NUMERIC_WEIGHTS, "age": 0.06}, INTERCEPT - 3)
    younger, older = {**APPLICANT, "age": AGE_PROTECTED_FROM - 1}, {**APPLICANT, "age": AGE_PROTECTED_FROM}
    (cited, not_cited) = principal_reasons(heavy_age, [younger, older], None, REFERENCE)
    assert cited[0].input == "age"
    assert "age" not in [r.input for r in not_cited]
    assert len(not_cited) == MAX_REASONS


def test_row_at_the_reference_gets_no_reasons(linear, committed):
    assert principal_reasons(linear, [REFERENCE], None, REFERENCE) == [[]]
    scorer, reference = committed
    assert principal_reasons(scorer, [reference], None, reference) == [[]]


def test_same_input_same_reasons(committed, rows):
    scorer, reference = committed
    first = principal_reasons(scorer, rows[:100], None, reference)
    assert principal_reasons(scorer, rows[:100], None, reference) == first


def test_small_change_to_an_uncited_input_keeps_the_order(linear):
    (before,) = principal_reasons(linear, [APPLICANT], None, REFERENCE)
    nudged = {**APPLICANT, "amount": APPLICANT["amount"] + 300}  # 0.03 on the logit; amount not cited
    (after,) = principal_reasons(linear, [nudged], None, REFERENCE)
    assert "amount" not in [r.input for r in after]
    assert [r.input for r in after] == [r.input for r in before]
    assert [r.message for r in after] == [r.message for r in before]


@pytest.mark.parametrize("which", ["linear", "committed"])
def test_batched_equals_row_by_row(which, linear, committed, rows):
    scorer, reference = (linear, REFERENCE) if which == "linear" else committed
    sample = rows[::7]
    probabilities = scorer.score_rows(sample)  # as served: with the age rule, like the reasons' variants
    batched = principal_reasons(scorer, sample, probabilities, reference)
    assert principal_reasons(scorer, sample, None, reference) == batched
    for row, reasons in zip(sample, batched, strict=True):
        (alone,) = principal_reasons(scorer, [row], None, reference)
        assert [r.input for r in alone] == [r.input for r in reasons]
        assert [r.probability_fall for r in alone] == pytest.approx(
            [r.probability_fall for r in reasons], abs=1e-6
        )


@pytest.mark.parametrize("which", ["linear", "committed"])
def test_notices_are_the_principal_reasons_as_the_api_gives_them(which, linear, committed, rows):
    scorer, reference = (linear, REFERENCE) if which == "linear" else committed
    sample = [APPLICANT, *rows[::5]]
    reasons = principal_reasons(scorer, sample, None, reference)
    assert any(reasons)
    assert notices(scorer, sample, None, reference) == [
        [{"input": r.input, "label": r.label, "message": r.message} for r in row] for row in reasons
    ]


def test_rules_hold_for_the_committed_model_on_every_applicant(committed, rows):
    scorer, reference = committed
    probabilities = scorer.score_rows(rows)
    everyone = principal_reasons(scorer, rows, probabilities, reference)
    assert len(everyone) == len(rows)
    for row, reasons in zip(rows, everyone, strict=True):
        assert len(reasons) <= MAX_REASONS
        falls = [r.probability_fall for r in reasons]
        assert falls == sorted(falls, reverse=True)
        assert all(f >= MIN_FALL for f in falls)
        assert len({r.input for r in reasons}) == len(reasons)
        if row["age"] >= AGE_PROTECTED_FROM:
            assert "age" not in {r.input for r in reasons}
        for reason in reasons:
            assert row[reason.input] != reference[reason.input]
        json.dumps([r.model_dump() for r in reasons])
    # brute force: the fall is the drop in p when that input alone takes its reference value
    for row, p, reasons in list(zip(rows, probabilities, everyone, strict=True))[:25]:
        for reason in reasons:
            changed = scorer.score_rows([{**row, reason.input: reference[reason.input]}])[0]
            assert reason.probability_fall == pytest.approx(p - changed, abs=1e-6)


class CountingSession:
    """Wraps an onnxruntime session and counts run() calls."""

    def __init__(self, session) -> None:
        self.session, self.runs, self.rows = session, 0, []

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, names, feed):
        self.runs += 1
        self.rows.append(next(iter(feed.values())).shape[0])
        return self.session.run(names, feed)


def test_all_rows_and_inputs_in_one_run(committed, rows):
    scorer, reference = committed
    sample = rows[:50]
    # only (row, input) pairs that could be cited are scored: not at the reference, not protected age;
    # each scored row aged 62+ also at every younger age (credit_api.age_rule), in the same run
    pair_ages = [
        reference["age"] if name == "age" else row["age"]
        for row in sample
        for name in FEATURE_NAMES
        if row[name] != reference[name] and not (name == "age" and row[name] >= AGE_PROTECTED_FROM)
    ]
    assert 0 < len(pair_ages) <= 50 * len(FEATURE_NAMES)
    base_ages = [row["age"] for row in sample]
    for probabilities, ages in ((scorer.score_rows(sample), pair_ages), (None, base_ages + pair_ages)):
        counting = CountingSession(scorer.session)
        principal_reasons(Scorer(counting), sample, probabilities, reference)
        assert counting.runs == 1
        assert counting.rows == [len(ages) + len(age_rule.variants(np.array(ages))[0])]


def test_nothing_to_cite_needs_no_run(committed):
    scorer, reference = committed
    counting = CountingSession(scorer.session)
    assert principal_reasons(Scorer(counting), [reference, reference], None, reference) == [[], []]
    assert counting.runs == 0


def test_every_input_and_value_has_a_message():
    for name in CATEGORICAL:
        for code in BY_NAME[name].codes:
            text = message(name, code, "__other__")
            assert text and text[0].isupper() and not text.endswith(".")
    for name in NUMERIC:
        feature = BY_NAME[name]
        middle = (feature.minimum + feature.maximum) // 2
        for value in (feature.minimum, feature.maximum):
            text = message(name, value, middle)
            assert text and text[0].isupper()
    assert message("amount", 9000, 1364) == "Loan amount of 9000 DM is high"
    assert message("savings_balance", "lt_100", "ge_1000") == "Savings are below 100 DM"


def test_wrong_number_of_probabilities_is_refused(linear):
    with pytest.raises(ValueError, match="2 probabilities for 1 rows"):
        principal_reasons(linear, [APPLICANT], [0.1, 0.2], REFERENCE)


def test_no_rows_no_work(linear):
    assert principal_reasons(linear, [], None, REFERENCE) == []


def test_hand_model_matches_its_float64_twin(linear):
    assert linear.predict([APPLICANT])[0] == pytest.approx(
        linear_onnx.probability(APPLICANT, CODED, NUMERIC_WEIGHTS, INTERCEPT), abs=1e-6
    )
