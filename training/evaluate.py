"""Classification metrics on out-of-fold probabilities, and the calibration check.

Every metric is computed per outer fold and averaged (with its standard deviation across folds),
so each number is an honest out-of-sample estimate. The UCI documentation's cost matrix (a bad
applicant approved costs 5, a good one declined costs 1) makes the cost-optimal cut-off
``1 / (1 + 5) = 1/6``: decline when the probability of default is at least 1/6. Accuracy is
reported both at 0.5 (the usual definition, the one the targets use) and at that cut-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression

from training.tune import auc

COST_BAD_APPROVED = 5.0
COST_GOOD_DECLINED = 1.0
COST_CUTOFF = COST_GOOD_DECLINED / (COST_GOOD_DECLINED + COST_BAD_APPROVED)
"""Approve when 5 p < 1 (1 - p): the expected cost of approving is below that of declining."""

Folds = Sequence[tuple[int, int, np.ndarray]]


def ks(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the score CDFs of bad and good."""
    labels = np.asarray(labels)
    order = np.argsort(scores, kind="stable")
    ordered_scores = np.asarray(scores)[order]
    bad = np.cumsum(labels[order] == 1) / max(1, int((labels == 1).sum()))
    good = np.cumsum(labels[order] == 0) / max(1, int((labels == 0).sum()))
    last_of_tie = np.r_[ordered_scores[1:] != ordered_scores[:-1], True]
    return float(np.max(np.abs(bad - good)[last_of_tie]))


def expected_cost(labels: np.ndarray, probabilities: np.ndarray, cutoff: float = COST_CUTOFF) -> float:
    """Mean UCI cost per applicant when applicants at or above ``cutoff`` are declined."""
    labels = np.asarray(labels)
    declined = np.asarray(probabilities) >= cutoff
    cost = COST_BAD_APPROVED * ((labels == 1) & ~declined) + COST_GOOD_DECLINED * ((labels == 0) & declined)
    return float(cost.mean())


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities) - np.asarray(labels)) ** 2))


SUMMARY_DECIMALS = 12
"""Far below any difference that matters, far above floating-point summation error."""


def fold_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Every metric on one fold."""
    area = auc(labels, probabilities)
    return {
        "roc_auc": area,
        "gini": 2 * area - 1,
        "ks": ks(labels, probabilities),
        "accuracy": float(np.mean((probabilities >= 0.5) == labels)),
        "accuracy_at_cost_cutoff": float(np.mean((probabilities >= COST_CUTOFF) == labels)),
        "brier": brier(labels, probabilities),
        "expected_cost": expected_cost(labels, probabilities),
    }


def summarise(labels: np.ndarray, probabilities: np.ndarray, folds: Folds) -> dict[str, dict[str, float]]:
    """Mean and standard deviation across outer folds of every metric.

    ``probabilities`` is ``(repeats, rows)``: the out-of-fold probabilities of each repeat.
    Both are rounded to ``SUMMARY_DECIMALS``: fold accuracies are ratios of counts, and summing
    them in floating point turns an exact 0.76 into 0.7599999999999999, which a ``>=`` against a
    target would wrongly fail.
    """
    per_fold = [fold_metrics(labels[test], probabilities[repeat, test]) for _, repeat, test in folds]
    return {
        name: {
            "mean": round(float(np.mean([m[name] for m in per_fold])), SUMMARY_DECIMALS),
            "std": round(float(np.std([m[name] for m in per_fold], ddof=1)), SUMMARY_DECIMALS)
            if len(per_fold) > 1
            else 0.0,
        }
        for name in per_fold[0]
    }


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Observed default rate against mean predicted probability, in quantile bins (pooled repeats)."""
    repeats = probabilities.shape[0]
    observed, predicted = calibration_curve(
        np.tile(labels, repeats), probabilities.reshape(-1), n_bins=bins, strategy="quantile"
    )
    return {"predicted": [float(v) for v in predicted], "observed": [float(v) for v in observed]}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


def calibration_check(labels: np.ndarray, probabilities: np.ndarray, folds: Folds) -> dict[str, Any]:
    """Would Platt scaling help? Cross-fitted: each fold's map is fit on the other folds' predictions.

    Returns the fold-mean Brier score and accuracy before and after (numbers the calibrator never
    saw), reliability curves, and the calibrated out-of-fold ``probabilities``.
    """
    calibrated = np.array(probabilities, copy=True)
    rows = np.arange(labels.size)
    for _, repeat, test in folds:
        train = np.setdiff1d(rows, test)
        platt = LogisticRegression(C=1e6).fit(_logit(probabilities[repeat, train]), labels[train])
        calibrated[repeat, test] = platt.predict_proba(_logit(probabilities[repeat, test]))[:, 1]
    before = summarise(labels, probabilities, folds)
    after = summarise(labels, calibrated, folds)
    return {
        "method": "sigmoid (Platt), cross-fitted on out-of-fold probabilities",
        "brier_before": before["brier"]["mean"],
        "brier_after": after["brier"]["mean"],
        "accuracy_before": before["accuracy"]["mean"],
        "accuracy_after": after["accuracy"]["mean"],
        "reliability_before": reliability(labels, probabilities),
        "reliability_after": reliability(labels, calibrated),
        "probabilities": calibrated,
    }
