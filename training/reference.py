"""Favourable reference values per input, for reason codes.

A reason code says how much lower the probability of default would be if one input had a
favourable value instead of the applicant's. The favourable value is read from the training data,
not from the model, so it means the same thing for every model and can be explained in one sentence:

- coded input: the code with the lowest observed default rate among codes held by at least
  ``min_support`` applicants (ties: the more common code, then schema order);
- numeric input: the ``quantile`` (default the quartile) on the low-risk side, the side given by the
  sign of the rank correlation with default (older is the low-risk side for age, shorter for the
  loan term); the median when there is no correlation. Always an observed value, so an int.

Deterministic: no randomness, no dependence on row order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from credit_api.schema import FEATURES, TARGET

MIN_SUPPORT_SHARE = 0.03
MIN_SUPPORT_ROWS = 30
QUANTILE = 0.25


def favourable_reference(
    frame: pd.DataFrame, *, min_support: int | None = None, quantile: float = QUANTILE
) -> dict[str, int | str]:
    """The favourable value of every schema input in ``frame`` (inputs plus the ``default`` column)."""
    if frame.empty:
        raise ValueError("cannot derive reference values from an empty frame")
    target = frame[TARGET].astype(float)
    support = (
        min_support if min_support is not None else max(MIN_SUPPORT_ROWS, int(MIN_SUPPORT_SHARE * len(frame)))
    )
    reference: dict[str, int | str] = {}
    for feature in FEATURES:
        column = frame[feature.name]
        if feature.categorical:
            reference[feature.name] = _best_code(column.astype(str), target, list(feature.codes), support)
        else:
            reference[feature.name] = _low_risk_quantile(column.astype(np.int64), target, quantile)
    return reference


def _best_code(column: pd.Series, target: pd.Series, order: list[str], support: int) -> str:
    stats = target.groupby(column).agg(["mean", "size"])
    eligible = stats[stats["size"] >= support]
    if eligible.empty:
        eligible = stats[stats["size"] == stats["size"].max()]
    rank = {code: i for i, code in enumerate(order)}
    best = min(
        eligible.index, key=lambda code: (eligible.at[code, "mean"], -eligible.at[code, "size"], rank[code])
    )
    return str(best)


def _low_risk_quantile(column: pd.Series, target: pd.Series, quantile: float) -> int:
    values = column.to_numpy()
    correlation = column.rank().corr(target.rank()) if column.nunique() > 1 and target.nunique() > 1 else 0.0
    if not np.isfinite(correlation) or abs(correlation) < 1e-12:
        return int(np.quantile(values, 0.5, method="inverted_cdf"))
    side = 1 if correlation > 0 else -1  # quantile of -values: the same rule from the other end
    return int(side * np.quantile(side * values, quantile, method="inverted_cdf"))
