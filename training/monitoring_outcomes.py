"""Outcome-based measures of the monitoring report: maturity, discrimination, calibration.

Loans take months to default. A decision's outcome is final (mature) only
``performance_window_days`` after the decision; until enough mature outcomes exist, the
figures below are computed on every outcome and labelled ``immature`` (provisional).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from credit_api import shadow
from scipy.stats import binomtest, rankdata

from training import fairness
from training.monitoring_config import INSUFFICIENT, THRESHOLDS, Thresholds, low_is_bad, p_value_status, worst
from training.monitoring_measures import Record, created, defaulted, probability, share

# ---------------------------------------------------------------- outcome maturity


AGE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("under 3 months", 91),
    ("3-6 months", 182),
    ("6-12 months", 365),
    ("12-24 months", 730),
    ("24 months or more", 10**9),
)


def is_mature(record: Record, as_of: datetime, t: Thresholds = THRESHOLDS) -> bool:
    moment = created(record)
    return moment is not None and (as_of - moment).days >= t.performance_window_days


def maturity(
    records: Sequence[Record], as_of: datetime, t: Thresholds = THRESHOLDS, read_from: datetime | None = None
) -> dict[str, Any]:
    """How many decisions have an outcome and how old they are.

    ``read_from``: when only the decisions made since then were read, with the labelled ones of
    any age (the deployed monitor, :func:`training.monitoring.run_aws`), the counts of decisions
    are over that window, and an age bucket reaching past it gives its outcomes but no count of
    decisions (``None``: not read), never a share computed on a partial count.

    Status: green once ``min_outcomes`` mature outcomes exist (performance figures are then
    final), otherwise ``insufficient``: every outcome-based figure is provisional.
    """
    dated = [(r, m) for r in records if (m := created(r)) is not None]
    in_window = [r for r, m in dated if read_from is None or m >= read_from]
    read_days = None if read_from is None else (as_of - read_from).days
    with_outcome = [r for r in records if defaulted(r) is not None]
    mature = [r for r in with_outcome if is_mature(r, as_of, t)]
    ages = [(as_of - m).days for r, m in dated]
    buckets = []
    lower = 0
    for label, upper in AGE_BUCKETS:
        inside = [r for r, m in dated if lower <= (as_of - m).days < upper]
        counted = read_days is None or upper <= read_days
        buckets.append(
            {
                "age": label,
                "decisions": len(inside) if counted else None,
                "outcomes": sum(defaulted(r) is not None for r in inside),
            }
        )
        lower = upper
    window_outcomes = sum(defaulted(r) is not None for r in in_window)
    return {
        "decisions": len(in_window),
        "with_outcome": window_outcomes,
        "outcome_share": share(window_outcomes, len(in_window)),
        "outcomes_all_ages": len(with_outcome),
        "decisions_read_from": None if read_from is None else read_from.isoformat(),
        "mature_outcomes": len(mature),
        "mature_defaults": sum(bool(defaulted(r)) for r in mature),
        "performance_window_days": t.performance_window_days,
        "decision_age_days": {
            "min": min(ages) if ages else None,
            "median": float(np.median(ages)) if ages else None,
            "max": max(ages) if ages else None,
        },
        "by_age": buckets,
        "status": "green" if len(mature) >= t.min_outcomes else INSUFFICIENT,
    }


def labelled(
    records: Sequence[Record], as_of: datetime, t: Thresholds = THRESHOLDS
) -> tuple[list[Record], str]:
    """The outcomes the performance figures use, and their maturity: ``mature`` (final) or ``immature``.

    Mature outcomes when there are enough of them; otherwise every outcome, labelled immature:
    the figures are then provisional (young loans have had less time to default).
    """
    scored = [r for r in records if defaulted(r) is not None and probability(r) is not None]
    mature = [r for r in scored if is_mature(r, as_of, t)]
    if _enough(mature, t):
        return mature, "mature"
    return scored, "immature"


def _enough(records: Sequence[Record], t: Thresholds) -> bool:
    defaults = sum(bool(defaulted(r)) for r in records)
    return (
        len(records) >= t.min_outcomes and min(defaults, len(records) - defaults) >= t.min_outcomes_per_class
    )


# ---------------------------------------------------------------- performance


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, t: Thresholds = THRESHOLDS) -> list[float | None]:
    """Percentile bootstrap interval of the ROC AUC over loans (resamples lacking a class are dropped)."""
    rng = np.random.default_rng(t.seed)
    n = len(labels)
    found: list[float] = []
    chunk = max(1, min(t.bootstrap_resamples, 2_000_000 // max(n, 1)))
    for start in range(0, t.bootstrap_resamples, chunk):
        rows = min(chunk, t.bootstrap_resamples - start)
        index = rng.integers(0, n, size=(rows, n))
        y, s = labels[index], scores[index]
        positives = y.sum(axis=1)
        negatives = n - positives
        ranks = rankdata(s, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs = ((ranks * y).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)
        found.extend(aucs[(positives > 0) & (negatives > 0)].tolist())
    if not found:
        return [None, None]
    lo, hi = fairness.percentile_interval(np.asarray(found)[:, None], t.confidence)
    return [float(lo[0]), float(hi[0])]


def performance(records: Sequence[Record], as_of: datetime, t: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """ROC AUC and Gini (2 AUC - 1) of the probability of default on loans with an outcome."""
    rows, basis = labelled(records, as_of, t)
    labels = np.array([int(bool(defaulted(r))) for r in rows])
    scores = np.array([probability(r) for r in rows], dtype=float)
    out: dict[str, Any] = {"n": len(rows), "defaults": int(labels.sum()), "maturity": basis}
    if not _enough(rows, t):
        return {
            **out,
            "auc": None,
            "auc_interval": [None, None],
            "gini": None,
            "gini_interval": [None, None],
            "status": INSUFFICIENT,
        }
    auc = shadow.roc_auc(labels.tolist(), scores.tolist())
    interval = bootstrap_auc(labels, scores, t)
    return {
        **out,
        "auc": auc,
        "auc_interval": interval,
        "gini": 2 * auc - 1,
        "gini_interval": [None if v is None else 2 * v - 1 for v in interval],
        "status": low_is_bad(auc, t.auc_amber, t.auc_red),
    }


def binomial(defaults: int, n: int, predicted: float) -> float:
    """Two-sided exact binomial p-value of ``defaults`` in ``n`` at default probability ``predicted``."""
    return float(binomtest(defaults, n, min(max(predicted, 0.0), 1.0), alternative="two-sided").pvalue)


def calibration(
    records: Sequence[Record],
    as_of: datetime,
    group_of: Callable[[Record], str | None],
    groups: Sequence[str],
    t: Thresholds = THRESHOLDS,
) -> dict[str, Any]:
    """Observed against predicted default rate per group, each with an exact binomial test.

    Predicted is the mean probability of default the decisions carried; the test asks whether
    the observed defaults are plausible under it.
    """
    rows, basis = labelled(records, as_of, t)
    table = []
    for group in groups:
        members = [r for r in rows if group_of(r) == group]
        n = len(members)
        k = sum(bool(defaulted(r)) for r in members)
        predicted = float(np.mean([probability(r) for r in members])) if members else None
        p_value = binomial(k, n, predicted) if n >= t.min_group_outcomes and predicted is not None else None
        table.append(
            {
                "group": group,
                "n": n,
                "defaults": k,
                "observed_rate": share(k, n),
                "predicted_rate": predicted,
                "p_value": p_value,
                "status": p_value_status(p_value, t),
            }
        )
    return {"maturity": basis, "groups": table, "status": worst([row["status"] for row in table])}
