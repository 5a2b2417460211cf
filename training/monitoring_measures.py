"""The measures of the monitoring report, each from decision records alone (numbers and a status).

Records have the shape documented in :mod:`credit_api.decision_log`. Every function here is
pure: records (and the champion's reference distributions) in, a JSON-ready dict out, with
``status`` set by :mod:`training.monitoring_config`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
from credit_api import shadow
from credit_api.manifest import Distribution
from credit_api.policy import GRADES, ScoreScale
from credit_api.schema import FEATURE_NAMES

from training import fairness, monitor
from training.monitoring_config import (
    INSUFFICIENT,
    THRESHOLDS,
    Thresholds,
    high_is_bad,
    low_is_bad,
    psi_status,
    worst,
)

Record = Mapping[str, Any]
DECISIONS = shadow.DECISIONS
DAY = timedelta(days=1)


# ---------------------------------------------------------------- record fields


def created(record: Record) -> datetime | None:
    """The decision's time (aware, UTC); None when the record has no readable one."""
    try:
        parsed = datetime.fromisoformat(str(record.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def month(moment: datetime) -> str:
    return f"{moment.year}-{moment.month:02d}"


def defaulted(record: Record) -> bool | None:
    """The loan's observed default, None while no outcome is recorded."""
    outcome = record.get("outcome")
    if isinstance(outcome, Mapping) and isinstance(outcome.get("defaulted"), bool):
        return outcome["defaulted"]
    return None


def probability(record: Record) -> float | None:
    value = record.get("probability_of_default")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _inputs(record: Record) -> Mapping[str, Any]:
    inputs = record.get("inputs")
    return inputs if isinstance(inputs, Mapping) else {}


def age_band(record: Record) -> str | None:
    age = _inputs(record).get("age")
    if not isinstance(age, int | float) or isinstance(age, bool) or not age >= fairness.AGE_BANDS[0][1]:
        return None
    return str(fairness.age_bands([age])[0])


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# ---------------------------------------------------------------- volumes and versions


def volumes(records: Sequence[Record], as_of: datetime, t: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """Decisions per ISO week and their approve/review/decline mix.

    Status: the approval share of the latest complete week (the week ``as_of`` falls in is
    still running unless it starts at ``as_of``) against that of the earlier weeks shown.
    """
    weeks: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        moment = created(record)
        if moment is not None and record.get("decision") in DECISIONS:
            weeks[iso_week(moment)][record["decision"]] += 1
    rows = []
    for week in sorted(weeks)[-t.weeks_shown :]:
        counts = weeks[week]
        n = sum(counts.values())
        rows.append(
            {
                "week": week,
                "n": n,
                **{d: counts[d] for d in DECISIONS},
                "approve_share": counts["approve"] / n,
            }
        )
    week_ends_at_as_of = as_of.weekday() == 0 and as_of.timetz() == time(0, tzinfo=as_of.tzinfo)
    running = None if week_ends_at_as_of else iso_week(as_of - timedelta(microseconds=1))
    complete = [r for r in rows if r["week"] != running]
    latest = complete[-1]["week"] if complete else None
    status, change = INSUFFICIENT, None
    if len(complete) >= 2 and complete[-1]["n"] >= t.min_week_decisions:
        earlier = sum(r["approve"] for r in complete[:-1]) / sum(r["n"] for r in complete[:-1])
        change = complete[-1]["approve_share"] - earlier
        status = high_is_bad(abs(change), t.mix_amber, t.mix_red)
    return {
        "weeks": rows,
        "running_week": running if complete != rows else None,
        "latest_complete_week": latest,
        "latest_approve_share_change": change,
        "status": status,
    }


def versions(records: Sequence[Record], champion_version: str | None) -> dict[str, Any]:
    """Decisions per ISO week by model version and by policy version.

    Status: green when every decision of the latest week came from the champion, amber when
    some came from another model (a switch during the week, or a function serving a stale one).
    """
    models: dict[str, Counter[str]] = defaultdict(Counter)
    policies: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        moment = created(record)
        if moment is None:
            continue
        week = iso_week(moment)
        models[week][str(record.get("model_version"))] += 1
        policies[week][str(record.get("policy_version") or "unversioned")] += 1
    rows = [
        {"week": w, "model_versions": dict(models[w]), "policy_versions": dict(policies[w])}
        for w in sorted(models)
    ]
    if not rows:
        return {"weeks": [], "champion_version": champion_version, "status": INSUFFICIENT}
    latest = rows[-1]["model_versions"]
    only_champion = champion_version is not None and set(latest) == {champion_version}
    return {
        "weeks": rows,
        "champion_version": champion_version,
        "status": "green" if only_champion else "amber",
    }


# ---------------------------------------------------------------- drift (characteristic analysis)


def bin_labels(distribution: Distribution, bins: int) -> list[str]:
    """Readable names of the bins :func:`training.monitor.binned_shares` counts into."""
    if distribution.kind == "categorical":
        labels = [str(code) for code in distribution.bins]
        return labels + [monitor.UNSEEN] * (bins - len(labels))
    edges = [float(e) for e in distribution.bins]
    inner = [f"[{_number(lo)}, {_number(hi)})" for lo, hi in pairwise(edges[1:-1])]
    if len(edges) == 2:
        return ["all"]
    return [f"< {_number(edges[1])}", *inner, f">= {_number(edges[-2])}"]


def _number(value: float) -> str:
    return f"{value:.4g}"


def values(name: str, distribution: Distribution, records: Sequence[Record]) -> list[Any]:
    """The values of an input (from ``inputs``) or a record field that can be binned like the reference:
    finite numbers for numeric bins; a record lacking it, or holding something else, is left out."""
    found = [_inputs(r).get(name) if name in FEATURE_NAMES else r.get(name) for r in records]
    if distribution.kind == "categorical":
        return [v for v in found if isinstance(v, str | int) and not isinstance(v, bool)]
    return [v for v in found if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]


def characteristic(
    distribution: Distribution, values: Sequence[Any], t: Thresholds = THRESHOLDS
) -> dict[str, Any]:
    """PSI of ``values`` against ``distribution`` with its per-bin table: which bins moved.

    A bin's contribution is ``(actual - expected) * ln(actual / expected)`` with both shares
    floored as :func:`training.monitor.psi` floors them, so the contributions sum to the PSI.
    """
    if len(values) < t.min_drift_sample:
        return {"n": len(values), "psi": None, "bins": [], "status": INSUFFICIENT}
    expected, actual = monitor.binned_shares(distribution, values)
    floor = monitor.SHARE_FLOOR
    rows = [
        {
            "bin": label,
            "expected": e,
            "actual": a,
            "contribution": (max(a, floor) - max(e, floor)) * math.log(max(a, floor) / max(e, floor)),
        }
        for label, e, a in zip(bin_labels(distribution, len(expected)), expected, actual, strict=True)
    ]
    value = monitor.psi(expected, actual)
    return {"n": len(values), "psi": value, "bins": rows, "status": psi_status(value, t)}


def grade_reference(score: Distribution, scale: ScoreScale) -> list[float]:
    """Expected share per risk grade, from the score's reference bins.

    The manifest carries no grade distribution; the grades are score bands, so each score
    bin's share is split over the grades its range overlaps, as if uniform within the bin.
    An approximation, labelled as one in the report.
    """
    cuts = [scale.base_score - k * scale.points_to_double_odds for k in range(len(GRADES) - 1)]
    edges = [float(e) for e in score.bins]
    shares = np.zeros(len(GRADES))
    for lo, hi, share in zip(edges[:-1], edges[1:], score.shares, strict=True):
        bounds = [math.inf, *cuts, -math.inf]  # grade g covers [bounds[g+1], bounds[g])
        for g in range(len(GRADES)):
            overlap = max(0.0, min(hi, bounds[g]) - max(lo, bounds[g + 1]))
            shares[g] += share * overlap / (hi - lo) if hi > lo else 0.0
    return list(shares / shares.sum())


def grades(
    records: Sequence[Record], score: Distribution | None, scale: ScoreScale, t: Thresholds = THRESHOLDS
) -> dict[str, Any]:
    """The risk-grade mix against the grade shares implied by the champion's score reference."""
    counts = Counter(r.get("risk_grade") for r in records if r.get("risk_grade") in GRADES)
    n = sum(counts.values())
    actual = [counts[g] / n if n else 0.0 for g in GRADES]
    expected = grade_reference(score, scale) if score is not None else None
    value = monitor.psi(expected, actual) if expected is not None and n >= t.min_drift_sample else None
    rows = [
        {"bin": g, "expected": None if expected is None else expected[i], "actual": actual[i], "n": counts[g]}
        for i, g in enumerate(GRADES)
    ]
    return {
        "n": n,
        "psi": value,
        "bins": rows,
        "reference": "approximate, from the score reference",
        "status": psi_status(value, t),
    }


def drift(
    records: Sequence[Record],
    reference: Mapping[str, Distribution],
    champion_version: str | None,
    scale: ScoreScale,
    t: Thresholds = THRESHOLDS,
) -> dict[str, Any]:
    """Characteristic analysis of the score and of every input (recent decisions against training).

    Inputs drift whichever model scored them; the score belongs to one model, so only the
    champion's decisions count for it (as :func:`training.monitor.drift` does).
    """
    scored = [r for r in records if r.get("model_version") == champion_version]
    found: dict[str, Any] = {}
    for name, distribution in sorted(reference.items()):
        if name in monitor.RECORD_FIELDS:
            found[name] = characteristic(distribution, values(name, distribution, scored), t)
        elif name in FEATURE_NAMES:
            found[name] = characteristic(distribution, values(name, distribution, records), t)
    scores = {k: v for k, v in found.items() if k in monitor.RECORD_FIELDS}
    inputs = {k: v for k, v in found.items() if k not in monitor.RECORD_FIELDS}
    grade = grades(scored, reference.get("score"), scale, t)
    return {
        "n": len(records),
        "scored_by_champion": len(scored),
        "scores": scores,
        "grades": grade,
        "inputs": inputs,
        "status": worst([v["status"] for v in found.values()] + [grade["status"]]),
    }


# ---------------------------------------------------------------- fairness


def approval_by_band(records: Sequence[Record], t: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """Approval rate per age band and the lowest/highest ratio (bands with too few decisions left out)."""
    bands = [label for label, _ in fairness.AGE_BANDS]
    counts = Counter(age_band(r) for r in records)
    approved = Counter(age_band(r) for r in records if r.get("decision") == "approve")
    rates = {b: share(approved[b], counts[b]) for b in bands}
    counted = [rates[b] for b in bands if counts[b] >= t.min_band_decisions and rates[b] is not None]
    ratio = fairness.min_max_ratio(counted) if len(counted) >= 2 else float("nan")
    ratio_value = None if math.isnan(ratio) else ratio
    return {
        "bands": [
            {"band": b, "n": counts[b], "approved": approved[b], "approval_rate": rates[b]} for b in bands
        ],
        "ratio": ratio_value,
        "status": low_is_bad(ratio_value, t.ratio_green, t.ratio_amber),
    }


def fairness_over_time(records: Sequence[Record], t: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """Approval rate per age band per month, and over all months shown (the headline)."""
    by_month: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        moment = created(record)
        if moment is not None:
            by_month[month(moment)].append(record)
    shown = sorted(by_month)[-t.months_shown :]
    months = [{"month": m, **approval_by_band(by_month[m], t)} for m in shown]
    overall = approval_by_band([r for m in shown for r in by_month[m]], t)
    return {"floor": t.ratio_green, "overall": overall, "months": months, "status": overall["status"]}


# ---------------------------------------------------------------- shadow challenger


def shadow_summary(comparison: Mapping[str, Any] | None, t: Thresholds = THRESHOLDS) -> dict[str, Any] | None:
    """:func:`credit_api.shadow.compare`'s result with agreement, swap share and a status (no swap rows)."""
    if comparison is None:
        return None
    if "error" in comparison:
        return {"error": comparison["error"], "status": INSUFFICIENT}
    n = comparison["n"]
    swaps = sum(comparison["swaps"].values())
    swap_share = share(swaps, n)
    enough = n >= t.min_shadow_decisions
    return {
        **{k: v for k, v in comparison.items() if k != "swap_rows"},
        "agreement": share(comparison["agree"], n),
        "swap_share": swap_share,
        "status": high_is_bad(swap_share, t.swap_amber, t.swap_red) if enough else INSUFFICIENT,
    }
