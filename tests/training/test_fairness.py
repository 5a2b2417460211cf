"""Fairness measures on hand-worked examples; the report and the model card regenerate identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.schema import TARGET

from training import comparison, config, economics, fairness, model_card
from training.data import ROOT, load
from training.models import candidates, pipeline

# Six applicants in two groups, worked by hand (approval, good approved, default among approved):
#   a: rows 0-2, good 1 1 0, approved 1 1 1 -> 3/3, 2/2, 1/3
#   b: rows 3-5, good 1 0 0, approved 1 0 0 -> 1/3, 1/1, 0/1
GROUPS = np.array(["a", "a", "a", "b", "b", "b"])
GOOD = np.array([1, 1, 0, 1, 0, 0])
APPROVED = np.array([1, 1, 1, 1, 0, 0])


def test_age_bands() -> None:
    bands = fairness.age_bands([18, 24, 25, 39, 40, 61, 62, 100])
    assert bands.tolist() == ["under 25", "under 25", "25-39", "25-39", "40-61", "40-61", "62+", "62+"]
    with pytest.raises(ValueError, match="below"):
        fairness.age_bands([17])


def test_min_max_ratio_by_hand() -> None:
    assert fairness.min_max_ratio([0.5, 0.8]) == pytest.approx(0.625)
    assert fairness.min_max_ratio([0.5, np.nan, 1.0]) == pytest.approx(
        0.5
    )  # a group with no rate is left out
    assert np.isnan(fairness.min_max_ratio([0.0, 0.0]))


def test_age_band_approval_on_hand_worked_rows() -> None:
    """Under 25: 12 of 20 approved; 25-39: 16 of 20; 40-61: 10 rows, too few to count; 62+: none."""
    ages = [22] * 20 + [30] * 20 + [50] * 10
    approve, decline = 0.01, 0.99
    probabilities = [approve] * 12 + [decline] * 8 + [approve] * 16 + [decline] * 4 + [approve] * 10
    frame = pd.DataFrame({"age": ages, "amount": 2000, "months_loan_duration": 12})
    found = fairness.age_band_approval(np.array(probabilities), frame, config.DEFAULT_POLICY)
    assert found.rates == {"under 25": 0.6, "25-39": 0.8}
    assert found.rows == {"under 25": 20, "25-39": 20, "40-61": 10, "62+": 0}
    assert found.ratio == pytest.approx(0.75) and found.min_band_rows == fairness.MIN_BAND_ROWS == 20
    assert fairness.age_ratio({"under 25": 0.6}) is None  # one band: nothing to compare
    assert fairness.age_ratio({"under 25": 0.0, "25-39": 0.0}) is None  # nobody approved


def test_group_table_by_hand() -> None:
    table = fairness.group_table(GOOD, APPROVED, GROUPS).by_group
    assert table.loc["a"].to_dict() == pytest.approx(
        {"n": 3, "approval_rate": 1.0, "good_approved": 1.0, "default_rate_approved": 1 / 3}
    )
    assert table.loc["b"].to_dict() == pytest.approx(
        {"n": 3, "approval_rate": 1 / 3, "good_approved": 1.0, "default_rate_approved": 0.0}
    )


def test_bootstrap_by_hand() -> None:
    # every applicant once gives the point estimates; the resample with weights 1 1 2 | 2 1 0 gives
    # a: approval 4/4, good approved 2/2, default among approved 2/4 (row 2 is bad, weight 2)
    # b: approval 2/3 (row 3, weight 2, of 3), good approved 2/2, default among approved 0/2
    # ratios: approval (2/3)/1, good approved 1/1, default among approved 0/0.5
    cases = (
        (np.ones((2, 6)), {"a": (1, 1, 1 / 3), "b": (1 / 3, 1, 0)}, (1 / 3, 1, 0)),
        (np.array([[1.0, 1, 2, 2, 1, 0]] * 2), {"a": (1, 1, 0.5), "b": (2 / 3, 1, 0)}, (2 / 3, 1, 0)),
    )
    for counts, by_group, ratios in cases:
        found = fairness.bootstrap(GOOD, APPROVED, GROUPS, counts)
        for group, expected in by_group.items():
            for measure, value in zip(fairness.MEASURES, expected, strict=True):
                assert found["groups"][measure][group] == pytest.approx([value, value])
        for measure, value in zip(fairness.MEASURES, ratios, strict=True):
            assert found["ratios"][measure] == pytest.approx([value, value])


def test_bootstrap_skips_a_group_with_no_denominator() -> None:
    # only group a drawn: b has no rate, so the ratio is a's over a's
    found = fairness.bootstrap(GOOD, APPROVED, GROUPS, np.array([[2.0, 2, 2, 0, 0, 0]]))
    assert np.isnan(found["groups"]["approval_rate"]["b"]).all()
    assert found["ratios"]["approval_rate"] == pytest.approx([1.0, 1.0])


def test_percentile_interval() -> None:
    low, high = fairness.percentile_interval(np.arange(101.0)[:, None])
    assert [low[0], high[0]] == pytest.approx([2.5, 97.5])
    low, high = fairness.percentile_interval(np.full((4, 1), np.nan))
    assert np.isnan(low).all() and np.isnan(high).all()
    counts = fairness.resample_counts(10, seed=1, resamples=3)
    assert counts.shape == (3, 10) and counts.sum(axis=1).tolist() == [10, 10, 10]
    assert counts.tolist() == fairness.resample_counts(10, seed=1, resamples=3).tolist()


def test_protected_groups_from_an_aligned_raw_file(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"age": [22, 45, 70], "amount": [1000, 2000, 3000], "months_loan_duration": [6, 12, 24]}
    )
    raw = pd.DataFrame(
        {
            "age_in_years": frame["age"],
            "credit_amount": frame["amount"],
            "duration_in_month": frame["months_loan_duration"],
            "personal_status_and_sex": [
                "male : single",
                "female : divorced/separated/married",
                "male : single",
            ],
            "foreign_worker": ["yes", "no", "yes"],
        }
    )
    raw.to_csv(tmp_path / "raw.csv", index=False)
    groups = fairness.protected_groups(frame, tmp_path / "raw.csv")
    assert groups.to_dict("list") == {
        "age_band": ["under 25", "40-61", "62+"],
        "sex_marital": ["male, single", "female, divorced, separated or married", "male, single"],
        "foreign_worker": ["foreign worker", "not a foreign worker", "foreign worker"],
    }
    raw.iloc[::-1].to_csv(tmp_path / "reordered.csv", index=False)
    with pytest.raises(ValueError, match="not aligned"):
        fairness.protected_groups(frame, tmp_path / "reordered.csv")


def test_model_inputs_leave_age_out() -> None:
    frame = load()
    modelled = fairness.model_inputs(frame)
    assert modelled["age"].nunique() == 1
    assert modelled.drop(columns="age").equals(frame.drop(columns="age"))


def test_young_reviews_only_turn_near_declines_of_the_young_into_reviews() -> None:
    frame = load()
    p = np.linspace(0.05, 0.95, len(frame))
    before = fairness.approved_by_policy(p, frame, config.DEFAULT_POLICY)
    after = fairness.young_reviews(p, frame, config.DEFAULT_POLICY)
    changed = before != after
    assert changed.any()
    assert set(before[changed]) == {"decline"} and set(after[changed]) == {"review"}
    assert (frame["age"].to_numpy()[changed] < 25).all()


@pytest.fixture(scope="module")
def quick_result() -> dict:
    """A quick evaluation with a logistic model and made-up groups: fast, and uses every code path."""
    frame = load()
    groups = pd.DataFrame(
        {
            "age_band": fairness.age_bands(frame["age"].to_numpy()),
            "sex_marital": np.array(list(fairness.SEX_MARITAL.values())[:4])[np.arange(len(frame)) % 4],
            "foreign_worker": np.array(list(fairness.FOREIGN_WORKER.values()))[
                (np.arange(len(frame)) % 9 == 0) * 1
            ],
        }
    )
    linear = pipeline(candidates(quick=True)["logistic_regression"], {"model__C": 0.3}, config.SEED)
    chosen = [t for t in fairness.TREATMENTS if t.name in ("no_rule", "as_is", "left_out", "young_reviews")]
    run = lambda: fairness.evaluate(  # noqa: E731
        linear,
        frame,
        groups,
        config.DEFAULT_POLICY,
        seed=config.SEED,
        quick=True,
        n_jobs=1,
        resamples=50,
        treatments=chosen,
    )
    first, second = run(), run()
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
    return first


def test_quick_evaluation_is_consistent(quick_result: dict) -> None:
    frame = load()
    rows = {row["name"]: row for row in quick_result["treatments"]}
    assert rows["as_is"]["auc_cost"] == 0
    assert rows["young_reviews"]["under_25_approval_rate"] == rows["as_is"]["under_25_approval_rate"]
    assert rows["young_reviews"]["under_25_decline_rate"] <= rows["as_is"]["under_25_decline_rate"]
    served = quick_result["assessment"]["age_band"]
    assert sum(g["n"] for g in served["groups"]) == len(frame)
    assert served["ratios"]["approval_rate"]["value"] == pytest.approx(
        served["ratios"]["approval_rate"]["fairlearn"]
    )
    bad_share = frame[TARGET].mean()
    assert quick_result["default_rate"] == pytest.approx(bad_share)


def test_report_regenerates_identically(quick_result: dict, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    fairness.write(quick_result, a)
    fairness.write(json.loads((a / fairness.RESULT).read_text()), b)  # from its own JSON: same bytes
    for name in (fairness.RESULT, fairness.REPORT):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    text = (a / fairness.REPORT).read_text()
    assert "| under 25 | 149 |" in text and "**min/max ratio**" in text


def test_committed_report_and_card_are_what_the_generators_write(tmp_path: Path) -> None:
    """The committed fairness report and model card are what the generators make of the committed JSON."""
    reports = ROOT / "reports"
    result = json.loads((reports / fairness.RESULT).read_text())
    assert (reports / fairness.REPORT).read_text() == fairness.markdown(result)
    manifest = Manifest.model_validate_json((ROOT / "function" / "model" / MANIFEST_FILE).read_text())
    assert result["model_version"] == manifest.model_version
    card = model_card.write(reports, manifest, tmp_path / "card.md")
    assert card.read_bytes() == model_card.CARD.read_bytes()
    assert card.read_bytes() == model_card.write(reports, manifest, tmp_path / "again.md").read_bytes()


def test_card_carries_the_numbers_it_is_built_from() -> None:
    reports = ROOT / "reports"
    manifest = Manifest.model_validate_json((ROOT / "function" / "model" / MANIFEST_FILE).read_text())
    loaded = [json.loads((reports / n).read_text()) for n in (comparison.RESULT, economics.RESULT_FILE)]
    result = json.loads((reports / fairness.RESULT).read_text())
    text = model_card.render(manifest, *loaded, result)
    auc = loaded[0]["champion_cv"]["roc_auc"]["mean"]
    assert f"| roc_auc | {auc:.4f} |" in text
    assert manifest.model_version in text
    for heading in (
        "Intended use",
        "not fit for",
        "known flaws",
        "Metrics",
        "Fairness",
        "Regulation B",
        "Policy",
    ):
        assert heading in text
    assert "\n".join(fairness.group_markdown(result["assessment"])) in text
    for version in manifest.package_versions.values():
        assert version in text
