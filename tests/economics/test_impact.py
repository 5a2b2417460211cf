"""The impact preview of a policy change: the economics report's own figures, current vs proposed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.policy import Policy
from credit_api.settings import BUNDLED_MODEL_DIR

from training import economics
from training.data import ROOT, load

REPORTS = ROOT / "reports"


@pytest.fixture(scope="module")
def stored() -> tuple[np.ndarray, pd.DataFrame, dict]:
    probabilities, frame = economics.read_predictions(REPORTS)
    report = json.loads((REPORTS / economics.RESULT_FILE).read_text())
    return probabilities, frame, report


def test_the_current_column_is_the_economics_report(stored: tuple[np.ndarray, pd.DataFrame, dict]) -> None:
    probabilities, frame, report = stored
    current = Policy(**report["policy"])
    proposed = current.model_copy(update={"review_band": 0.4})
    rows = economics.impact(probabilities, frame, current, proposed)
    published = {**report["point"], **report["scaled"]}
    assert [row["measure"] for row in rows] == [name for name, _, _ in economics.IMPACT_MEASURES]
    for row in rows:
        assert row["current"] == pytest.approx(published[row["measure"]], rel=1e-12, abs=1e-12)
        assert row["change"] == pytest.approx(row["proposed"] - row["current"])
    by_name = {row["measure"]: row for row in rows}
    assert by_name["review_rate"]["proposed"] > by_name["review_rate"]["current"]  # a wider band refers more


def test_the_stored_predictions_are_for_the_reference_data_and_the_served_policy(
    stored: tuple[np.ndarray, pd.DataFrame, dict],
) -> None:
    probabilities, frame, report = stored
    reference = load()
    columns = list(economics.PREDICTION_COLUMNS[:-1])
    pd.testing.assert_frame_equal(
        frame[columns], reference[columns].reset_index(drop=True), check_dtype=False
    )
    assert len(probabilities) == report["n"] and ((probabilities >= 0) & (probabilities <= 1)).all()
    manifest = Manifest.model_validate_json((BUNDLED_MODEL_DIR / MANIFEST_FILE).read_bytes())
    assert manifest.policy.model_dump() == report["policy"]  # the report evaluated the policy served


def test_the_same_policy_changes_nothing(stored: tuple[np.ndarray, pd.DataFrame, dict]) -> None:
    probabilities, frame, report = stored
    current = Policy(**report["policy"])
    assert all(row["change"] == 0 for row in economics.impact(probabilities, frame, current, current))


def test_predictions_round_trip_to_the_last_bit(tmp_path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "amount": [1000, 2500, 700],
            "months_loan_duration": [12, 24, 6],
            "default": [0, 1, 0],
            "age": [30, 40, 50],
        }
    )
    probabilities = rng.random(3)
    economics.write_predictions(probabilities, frame, tmp_path)
    read, loans = economics.read_predictions(tmp_path)
    assert read.tolist() == probabilities.tolist()
    assert list(loans.columns) == ["amount", "months_loan_duration", "default"]
    with pytest.raises(ValueError, match="2 probabilities for 3 rows"):
        economics.write_predictions(probabilities[:2], frame, tmp_path)


def test_missing_predictions_say_what_writes_them(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="training run writes it"):
        economics.read_predictions(tmp_path)
