"""Regulation B's age rule: no applicant aged 62+ scored worse than the same applicant at any younger age.

Checked by hand on the two helpers, then on every data row and on generated applicants, with a
model where the rule bites (a logistic model whose risk rises with age) and with the committed one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from credit_api import age_rule
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from credit_api.model_store import LoadedModel, ModelLoadError, build, sha256
from credit_api.policy import GRADES
from credit_api.reasons import principal_reasons
from credit_api.schema import BY_NAME, CATEGORICAL, EXAMPLE_APPLICANT, FEATURES
from credit_api.scoring import Scorer
from credit_api.underwriting import assess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.economics import linear_onnx
from training.data import load

MODEL_DIR = Path(__file__).resolve().parents[2] / "function" / "model"
OLDEST = int(BY_NAME["age"].maximum)
RANK = {"approve": 0, "review": 1, "decline": 2}


@pytest.fixture(scope="module")
def rising() -> Scorer:
    """Risk rises with age (and with the term): the rule changes every protected probability."""
    return linear_onnx.scorer(
        {"checking_balance": {"lt_0": 1.0}}, {"age": 0.04, "months_loan_duration": 0.03}, -3
    )


@pytest.fixture(scope="module")
def committed() -> Scorer:
    return Scorer.from_bytes((MODEL_DIR / MODEL_FILE).read_bytes())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    frame = load()
    return frame[[f.name for f in FEATURES]].to_dict("records")


def test_variants_by_hand() -> None:
    owner, ages = age_rule.variants(np.array([30, 62, 20, 64]))
    assert owner.tolist() == [1] * 44 + [3] * 46
    assert ages.tolist() == list(range(18, 62)) + list(range(18, 64))
    empty_owner, empty_ages = age_rule.variants(np.array([18, 61]))
    assert empty_owner.size == empty_ages.size == 0


def test_collapse_by_hand() -> None:
    # rows 0 and 1, then variants of row 1, row 1, row 0
    lowered = age_rule.collapse(np.array([0.5, 0.4, 0.3, 0.6, 0.2]), np.array([1, 1, 0]), 2)
    assert lowered.tolist() == [0.2, 0.3]
    assert age_rule.collapse(np.array([0.1, 0.9]), np.array([0]), 1).tolist() == [0.1]
    with pytest.raises(ValueError, match="probabilities for"):
        age_rule.collapse(np.array([0.1, 0.2]), np.array([0, 0]), 1)


def test_feed_without_protected_rows_is_left_alone(committed: Scorer) -> None:
    feed = committed.feed([EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "age": 61}])
    expanded, owner, n = age_rule.expand_feed(feed)
    assert n == 2 and owner.size == 0
    assert all(expanded[name] is feed[name] for name in feed)
    assert committed.score(feed).tolist() == committed.run(feed).tolist()


def _at_every_age(scorer: Scorer, row: dict) -> np.ndarray:
    """The served probability of ``row`` at each age from the youngest to the oldest."""
    return scorer.score_rows([{**row, "age": age} for age in range(age_rule.YOUNGEST, OLDEST + 1)])


def _check(scorer: Scorer, row: dict) -> None:
    served = _at_every_age(scorer, row)
    raw = scorer.predict([{**row, "age": age} for age in range(age_rule.YOUNGEST, OLDEST + 1)])
    young = age_rule.AGE_PROTECTED_FROM - age_rule.YOUNGEST
    assert served[:young].tolist() == raw[:young].tolist()  # under 62: the model's own probability
    for offset in range(young, served.size):
        # never above any younger age's served probability, nor above its own model probability
        assert served[offset] <= served[:offset].min() + 1e-12
        assert served[offset] <= raw[: offset + 1].min() + 1e-12


def test_every_data_row_at_every_age(rising: Scorer, committed: Scorer, rows: list[dict]) -> None:
    for row in rows[::10]:
        _check(rising, row)
    for row in (r for r in rows if r["age"] >= age_rule.AGE_PROTECTED_FROM):
        _check(rising, row)
        _check(committed, row)


def test_the_rule_bites_where_risk_rises_with_age(rising: Scorer, rows: list[dict]) -> None:
    protected = [r for r in rows if r["age"] >= age_rule.AGE_PROTECTED_FROM]
    assert len(protected) == 38
    served = rising.score_rows(protected)
    at_youngest = rising.predict([{**r, "age": age_rule.YOUNGEST} for r in protected])
    assert served == pytest.approx(at_youngest, abs=1e-7)
    assert np.all(served < rising.predict(protected))


def test_committed_model_does_not_use_age(committed: Scorer, rows: list[dict]) -> None:
    """Age is left out of the served model (training/fairness.py): the rule holds by construction."""
    own = committed.predict(rows)
    for age in (age_rule.YOUNGEST, 24, 25, 61, 62, OLDEST):
        assert committed.predict([{**row, "age": age} for row in rows]).tolist() == own.tolist()


def _applicants() -> st.SearchStrategy[dict]:
    fields = {}
    for feature in FEATURES:
        if feature.name in CATEGORICAL:
            fields[feature.name] = st.sampled_from(list(feature.codes))
        elif feature.name == "age":
            fields[feature.name] = st.integers(age_rule.AGE_PROTECTED_FROM, OLDEST)
        else:
            fields[feature.name] = st.integers(feature.minimum, feature.maximum)
    return st.fixed_dictionaries(fields)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(applicant=_applicants())
def test_generated_applicants(rising: Scorer, committed: Scorer, applicant: dict) -> None:
    _check(rising, applicant)
    _check(committed, applicant)


def test_decision_score_and_grade_never_worse_than_younger(rising: Scorer, rows: list[dict]) -> None:
    manifest = Manifest.model_validate_json((MODEL_DIR / MANIFEST_FILE).read_text())
    model = LoadedModel(rising, manifest, "test", "test", datetime.now(UTC), 0.0)
    for row in [r for r in rows if r["age"] >= age_rule.AGE_PROTECTED_FROM][:10]:
        ages = range(age_rule.YOUNGEST, row["age"] + 1)
        found = assess(model, [{**row, "age": age} for age in ages])
        own = found[-1]
        for younger in found[:-1]:
            assert own["probability_of_default"] <= younger["probability_of_default"]
            assert own["score"] >= younger["score"]
            assert GRADES.index(own["risk_grade"]) <= GRADES.index(younger["risk_grade"])
            assert RANK[own["decision"]] <= RANK[younger["decision"]]
        assert "age" not in {r["input"] for r in own["reasons"]}


# A model verified not to depend on age: the rule holds by construction and is skipped ------------


def test_is_invariant_tells_a_model_without_age_from_one_with_it(
    rising: Scorer, committed: Scorer, rows: list[dict]
) -> None:
    assert age_rule.is_invariant(committed.run, committed.feed(rows))
    assert not age_rule.is_invariant(rising.run, rising.feed(rows[:5]))
    # one row whose probability moves with age is enough to refuse the claim
    slight = linear_onnx.scorer({}, {"age": 1e-6}, -1)
    assert not age_rule.is_invariant(slight.run, slight.feed([rows[0]]))


def test_the_committed_manifest_claims_invariance_and_the_served_scores_are_unchanged(
    committed: Scorer, rows: list[dict]
) -> None:
    manifest = Manifest.model_validate_json((MODEL_DIR / MANIFEST_FILE).read_text())
    assert manifest.age_invariant
    model, manifest_bytes = (MODEL_DIR / MODEL_FILE).read_bytes(), (MODEL_DIR / MANIFEST_FILE).read_bytes()
    served = build(model, manifest_bytes, source="t")
    assert served.scorer.age_invariant
    protected = [r for r in rows if r["age"] >= age_rule.AGE_PROTECTED_FROM]
    everyone = rows[::7] + [{**r, "age": age} for r in protected for age in (18, 61, 62, OLDEST)]
    assert served.scorer.score_rows(everyone).tolist() == committed.score_rows(everyone).tolist()
    adverse = [r for r in everyone if committed.predict([r])[0] > 0.3][:40]
    reference = manifest.reason_reference
    assert principal_reasons(served.scorer, adverse, None, reference) == principal_reasons(
        committed, adverse, None, reference
    )


def test_a_false_invariance_claim_is_refused_at_load() -> None:
    """A manifest claiming age_invariant beside a graph that uses age is never served."""
    graph = linear_onnx.build({"checking_balance": {"lt_0": 1.0}}, {"age": 0.04}, -3)
    manifest = json.loads((MODEL_DIR / MANIFEST_FILE).read_text())
    manifest.update(onnx_sha256=sha256(graph), age_invariant=True)
    with pytest.raises(ModelLoadError, match="age_invariant"):
        build(graph, json.dumps(manifest).encode(), source="test")
    manifest["age_invariant"] = False  # the same graph without the claim: served, with the rule
    assert not build(graph, json.dumps(manifest).encode(), source="test").scorer.age_invariant
