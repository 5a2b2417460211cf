"""Every threshold of the monitoring report (``credit monitor``), in one place.

A measure's status is one of:

- ``green``: within tolerance;
- ``amber``: moved enough to be watched and explained at the next model review;
- ``red``: needs action (investigate, recalibrate, retrain or restrict the model);
- ``insufficient``: too few observations for the figure to mean anything. Such a measure
  shows no status colour and never counts toward the overall status.

The overall status of a report is the worst green/amber/red among the measures that count
(the shadow challenger is informational: it describes a model that does not decide).

Sources: PSI bands as in :mod:`training.monitor` (Siddiqi, *Credit Risk Scorecards*, 2006);
the four-fifths rule of thumb for approval-rate ratios (29 CFR 1607.4(D),
``training.fairness.FOUR_FIFTHS``); the exact binomial test of a grade's default rate is the
Basel Committee's backtesting test (BCBS Working Paper 14, 2005). The AUC floors are the
service's own: the champion's cross-validated AUC is about 0.77.
"""

from __future__ import annotations

from dataclasses import dataclass

from training import config, monitor
from training.fairness import FOUR_FIFTHS

GREEN, AMBER, RED, INSUFFICIENT = "green", "amber", "red", "insufficient"
STATUSES = (GREEN, AMBER, RED, INSUFFICIENT)
SEVERITY = {INSUFFICIENT: -1, GREEN: 0, AMBER: 1, RED: 2}


@dataclass(frozen=True)
class Thresholds:
    """What makes each measure green, amber or red, and how many observations it needs."""

    psi_amber: float = 0.10
    """PSI at or above this is amber (a moderate shift)."""
    psi_red: float = monitor.DRIFT_ALERT
    """PSI above this is red (a significant shift; the template's DriftAlarm fires at the same value)."""
    drift_window_days: int = 30
    """Input and score distributions are those of the decisions of the last this many days."""
    min_drift_sample: int = monitor.MIN_SAMPLE
    mix_amber: float = 0.05
    """The latest week's approval share this far (absolute) from the earlier weeks' is amber."""
    mix_red: float = 0.10
    min_week_decisions: int = 50
    """A week with fewer decisions has no mix status."""
    weeks_shown: int = 26
    months_shown: int = 12
    decisions_read_days: int = 372
    """The deployed report reads the decisions of this many days (the day index), and the labelled
    ones of any age (:mod:`training.labelled_decisions`): enough for the weeks and months shown,
    the drift window and the maturity buckets up to 12 months, whatever the table's age."""

    performance_window_days: int = 365
    """A loan's outcome is final (mature) only this long after its decision: loans take months
    to default, so a younger loan without a default may still become one."""
    min_outcomes: int = 100
    min_outcomes_per_class: int = 10
    auc_amber: float = 0.70
    """AUC below this is amber."""
    auc_red: float = 0.65
    """AUC below this is red."""
    bootstrap_resamples: int = config.BOOTSTRAP_RESAMPLES
    confidence: float = config.CONFIDENCE
    seed: int = config.SEED

    binomial_amber: float = 0.05
    """Observed against predicted default rate: a two-sided exact binomial p-value below this is amber."""
    binomial_red: float = 0.01
    min_group_outcomes: int = 30
    """A grade or age band with fewer outcomes has no calibration status."""

    ratio_green: float = FOUR_FIFTHS
    """Age-band approval-rate ratio (lowest / highest) at or above this is green."""
    ratio_amber: float = 0.70
    """Below ``ratio_green`` but at or above this is amber; below it, red."""
    min_band_decisions: int = 30
    """An age band with fewer decisions in a period is left out of that period's ratio."""

    swap_amber: float = 0.05
    """Share of shadowed decisions approved by one model and declined by the other."""
    swap_red: float = 0.10
    min_shadow_decisions: int = 100


THRESHOLDS = Thresholds()


def worst(statuses: list[str]) -> str:
    """The worst green/amber/red of ``statuses``; ``insufficient`` only when nothing else is there."""
    rated = [s for s in statuses if s != INSUFFICIENT]
    return max(rated, key=SEVERITY.__getitem__) if rated else INSUFFICIENT


def psi_status(value: float | None, t: Thresholds = THRESHOLDS) -> str:
    if value is None:
        return INSUFFICIENT
    if value > t.psi_red:
        return RED
    return AMBER if value >= t.psi_amber else GREEN


def low_is_bad(value: float | None, green_at: float, amber_at: float) -> str:
    """Green at or above ``green_at``, amber at or above ``amber_at``, red below (None: insufficient)."""
    if value is None:
        return INSUFFICIENT
    if value >= green_at:
        return GREEN
    return AMBER if value >= amber_at else RED


def high_is_bad(value: float | None, amber_at: float, red_at: float) -> str:
    """Green below ``amber_at``, amber below ``red_at``, red at or above (None: insufficient)."""
    if value is None:
        return INSUFFICIENT
    if value >= red_at:
        return RED
    return AMBER if value >= amber_at else GREEN


def p_value_status(p_value: float | None, t: Thresholds = THRESHOLDS) -> str:
    if p_value is None:
        return INSUFFICIENT
    if p_value < t.binomial_red:
        return RED
    return AMBER if p_value < t.binomial_amber else GREEN
