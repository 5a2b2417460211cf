"""Drift: the population stability index (PSI) of recent decisions against the training data.

The champion's manifest carries ``reference_distributions``: for each input (and the score)
the bins and the share of training rows in each. Recent decisions are binned the same way and

    PSI = sum_i (actual_i - expected_i) * ln(actual_i / expected_i)

over the bins. The usual reading (Siddiqi, *Credit Risk Scorecards*, 2006): below 0.1 stable,
0.1 to 0.25 a moderate shift worth watching, above 0.25 a significant shift that needs a look
at the model. ``DRIFT_ALERT`` is that 0.25, the threshold of the template's drift alarm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from credit_api.manifest import Distribution
from credit_api.schema import FEATURE_NAMES

DRIFT_ALERT = 0.25
MIN_SAMPLE = 100
"""Fewer recent decisions than this give a PSI that is mostly sampling noise: none is reported."""
SHARE_FLOOR = 1e-4
"""Empty bins would make ln(actual/expected) infinite; both shares are floored at this."""
RECORD_FIELDS = ("score", "probability_of_default")
"""Reference keys read from the decision record itself rather than from its inputs."""
UNSEEN = "<unseen>"


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = SHARE_FLOOR) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares (same bins)."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected shares but {len(actual)} actual")
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def binned_shares(distribution: Distribution, values: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(expected, actual) shares over the reference bins, for PSI.

    Numeric bins are ``[edge_i, edge_i+1)`` as ``numpy.histogram`` counts them; values beyond
    the outer edges fall in the outer bins (a shift past the training range is drift, not
    missing data). A category the reference never saw gets one extra bin, expected share 0.
    """
    expected = list(distribution.shares)
    if not values:
        raise ValueError("no values to bin")
    if distribution.kind == "numeric":
        edges = np.asarray(distribution.bins, dtype=float)
        index = np.searchsorted(edges[1:-1], np.asarray(values, dtype=float), side="right")
        counts = np.bincount(index, minlength=len(expected)).astype(float)
        return expected, list(counts / counts.sum())
    position = {str(code): i for i, code in enumerate(distribution.bins)}
    counts = np.zeros(len(expected) + 1)
    for value in values:
        counts[position.get(str(value), len(expected))] += 1
    actual = list(counts / counts.sum())
    if actual[-1] == 0:
        return expected, actual[:-1]
    return [*expected, 0.0], actual


@dataclass(frozen=True)
class DriftReport:
    """PSI per reference key; ``skipped`` says why a key has none (too few values, unknown key)."""

    sample_size: int
    psi: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def max_psi(self) -> float | None:
        return max(self.psi.values()) if self.psi else None

    @property
    def alerts(self) -> list[str]:
        return sorted(name for name, value in self.psi.items() if value > DRIFT_ALERT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sample_size": self.sample_size,
            "psi": {k: round(v, 6) for k, v in sorted(self.psi.items())},
            "max_psi": None if self.max_psi is None else round(self.max_psi, 6),
            "alert_threshold": DRIFT_ALERT,
            "alerts": self.alerts,
            "skipped": self.skipped,
        }


def _values(name: str, records: Iterable[Mapping[str, Any]]) -> list[Any]:
    if name in FEATURE_NAMES:
        return [r["inputs"][name] for r in records if name in (r.get("inputs") or {})]
    return [r[name] for r in records if isinstance(r.get(name), int | float) and math.isfinite(r[name])]


def drift(
    reference: Mapping[str, Distribution],
    records: Sequence[Mapping[str, Any]],
    model_version: str | None = None,
    min_sample: int = MIN_SAMPLE,
) -> DriftReport:
    """PSI of each input (from ``record["inputs"]``) and of the score (from the record) against ``reference``.

    Inputs drift whichever model scored them; the score's distribution belongs to one model,
    so with ``model_version`` only that model's decisions count for the score fields.
    """
    scored_by_model = [r for r in records if model_version is None or r.get("model_version") == model_version]
    found: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, distribution in sorted(reference.items()):
        if name not in FEATURE_NAMES and name not in RECORD_FIELDS:
            skipped[name] = "not an input or a decision-record field"
            continue
        values = _values(name, records if name in FEATURE_NAMES else scored_by_model)
        if len(values) < min_sample:
            skipped[name] = f"{len(values)} values, fewer than {min_sample}"
            continue
        found[name] = psi(*binned_shares(distribution, values))
    return DriftReport(sample_size=len(records), psi=found, skipped=skipped)
