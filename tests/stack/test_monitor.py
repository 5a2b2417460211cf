"""PSI drift on hand-computed cases, and the binning it shares with the exported reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from credit_api.manifest import Distribution

from training import monitor


def test_psi_matches_the_formula_by_hand() -> None:
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)  # (a-e)ln(a/e) over [0.5,0.5] -> [0.25,0.75]
    assert monitor.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert monitor.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert monitor.psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) > monitor.DRIFT_ALERT  # an empty bin filling up
    with pytest.raises(ValueError):
        monitor.psi([1.0], [0.5, 0.5])


def test_numeric_values_fall_in_left_closed_bins_and_outliers_in_the_outer_ones() -> None:
    reference = Distribution(kind="numeric", bins=[0.0, 10.0, 20.0, 30.0], shares=[0.2, 0.3, 0.5])
    expected, actual = monitor.binned_shares(reference, [-5, 0, 9.99, 10, 25, 100])
    assert expected == [0.2, 0.3, 0.5]
    assert actual == pytest.approx([3 / 6, 1 / 6, 2 / 6])


def test_a_category_never_seen_in_training_gets_its_own_bin() -> None:
    reference = Distribution(kind="categorical", bins=["a", "b"], shares=[0.6, 0.4])
    assert monitor.binned_shares(reference, ["a", "c"]) == ([0.6, 0.4, 0.0], [0.5, 0.0, 0.5])
    assert monitor.binned_shares(reference, ["a", "b", "b", "a"]) == ([0.6, 0.4], [0.5, 0.5])


def test_same_binning_as_the_exported_reference() -> None:
    """``training.export`` computes reference shares; the monitor must bin the training data identically."""
    from training.config import DEFAULT_POLICY, DEFAULT_SCALE
    from training.data import load
    from training.export import reference_distributions

    frame = load()
    probabilities = np.linspace(0.01, 0.99, len(frame))
    reference = reference_distributions(frame, probabilities, DEFAULT_POLICY, DEFAULT_SCALE)
    report = monitor.drift(reference, [{"inputs": r} for r in frame.to_dict("records")])
    inputs = {k: v for k, v in report.psi.items() if k in frame.columns}
    assert len(inputs) == 16 and max(inputs.values()) < 1e-6


def test_drift_skips_small_samples_and_scores_of_other_models() -> None:
    reference = {
        "age": Distribution(kind="numeric", bins=[18.0, 40.0, 100.0], shares=[0.5, 0.5]),
        "score": Distribution(kind="numeric", bins=[300.0, 600.0, 900.0], shares=[0.5, 0.5]),
        "mystery": Distribution(kind="categorical", bins=["x"], shares=[1.0]),
    }
    records = [{"inputs": {"age": 30}, "score": 700, "model_version": "old"} for _ in range(150)]
    report = monitor.drift(reference, records, model_version="new")
    assert set(report.psi) == {"age"} and report.psi["age"] > monitor.DRIFT_ALERT
    assert report.alerts == ["age"]
    assert "fewer than" in report.skipped["score"] and "not an input" in report.skipped["mystery"]
    assert monitor.drift(reference, records[:99]).psi == {}
    assert set(monitor.drift(reference, records, model_version="old").psi) == {"age", "score"}
