"""Metrics on hand-computed cases, and the calibration check's verdicts."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold

from training.evaluate import COST_CUTOFF, calibration_check, expected_cost, fold_metrics, ks, summarise
from training.tune import auc

LABELS = np.array([0, 0, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8])


def test_auc_by_hand_and_as_scikit_learn_computes_it():
    # positives beat negatives in 3 of the 4 pairs; a tie counts half
    assert auc(LABELS, SCORES) == 0.75
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 500), rng.integers(0, 20, 500) / 20
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_ks_by_hand():
    # sorted: 0.1 good, 0.35 bad, 0.4 good, 0.8 bad -> CDF gaps 0.5, 0, 0.5, 0
    assert ks(LABELS, SCORES) == 0.5
    # tied scores are one step: no gap may open inside a tie
    assert ks(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.0


def test_expected_cost_uses_the_uci_matrix_at_one_sixth():
    assert pytest.approx(1 / 6) == COST_CUTOFF
    labels = np.array([1, 1, 0, 0])
    probabilities = np.array([0.1, 0.5, 0.2, 0.05])
    # declined: 0.5 and 0.2. A bad one approved (5) and a good one declined (1), over 4 applicants
    assert expected_cost(labels, probabilities) == 1.5
    assert fold_metrics(labels, probabilities)["accuracy"] == 0.75
    assert fold_metrics(labels, probabilities)["accuracy_at_cost_cutoff"] == 0.5


def test_summary_is_mean_and_spread_over_folds():
    labels = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.2, 0.9, 0.6, 0.7]])
    folds = [(0, 0, np.array([0, 1])), (1, 0, np.array([2, 3]))]
    summary = summarise(labels, probabilities, folds)
    assert summary["accuracy"] == {"mean": 0.75, "std": pytest.approx(np.std([1.0, 0.5], ddof=1))}
    assert summary["roc_auc"]["mean"] == 1.0
    assert summary["gini"]["mean"] == 1.0


def test_an_exact_mean_of_fold_accuracies_is_not_lost_to_float_summation():
    # Three folds of 25 rows with 9, 24 and 24 right: 57 / 75 is exactly 0.76, but the plain
    # floating-point mean of 0.36, 0.96 and 0.96 is 0.7599999999999999 and fails a >= 0.76 target.
    right = (9, 24, 24)
    assert float(np.mean([r / 25 for r in right])) < 0.76
    labels = np.arange(75) % 2
    wrong = np.concatenate([np.arange(25) >= r for r in right])  # the first r of each fold are right
    probabilities = np.where(labels == 1, 0.9, 0.1)[None, :]
    probabilities[0, wrong] = 1 - probabilities[0, wrong]
    folds = [(k, 0, np.arange(25 * k, 25 * (k + 1))) for k in range(3)]
    assert summarise(labels, probabilities, folds)["accuracy"]["mean"] >= 0.76


def _folds(labels):
    splitter = RepeatedStratifiedKFold(n_splits=5, n_repeats=1, random_state=0)
    return [(i, 0, test) for i, (_, test) in enumerate(splitter.split(labels, labels))]


def test_calibration_helps_an_overconfident_model_and_not_a_calibrated_one():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.02, 0.98, 4000)
    labels = (rng.uniform(size=truth.size) < truth).astype(int)
    folds = _folds(labels)
    logit = np.log(truth / (1 - truth))
    overconfident = 1 / (1 + np.exp(-3 * logit))
    calibrated = calibration_check(labels, truth[None, :], folds)
    distorted = calibration_check(labels, overconfident[None, :], folds)
    assert abs(calibrated["brier_before"] - calibrated["brier_after"]) < 0.001
    assert distorted["brier_before"] - distorted["brier_after"] > 0.01
    assert distorted["probabilities"].shape == (1, truth.size)
