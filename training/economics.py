"""What the decision policy is worth: out-of-fold predictions against approving everyone.

The policy evaluated is the one the function serves (``credit_api.policy``): probabilities are
corrected to the population default rate if one is configured, then each application is approved,
referred for review or declined by its own break-even probability. Money is counted on the realised
outcome of each historical loan:

- a booked good loan earns ``amount x annual_margin x months / 12``, a booked bad one loses
  ``amount x LGD``; a declined application earns and loses nothing;
- reviews count as declined in the headline figures (nothing is booked until a person decides);
  the figures with reviews counted as approved are reported beside them. A reviewer who can tell
  good from bad does at least as well as the better of the two.
- the sample oversamples bad loans (30%). With a population default rate configured, each bad
  loan is weighted ``pi / rho`` and each good one ``(1 - pi) / (1 - rho)`` (``rho`` the frame's
  default rate), so the money and rates describe applicants in the population's mix. Accuracy and
  the UCI cost matrix are reported on the sample, unweighted, as they were defined there.

Money is in Deutsche Mark of 1973-75; ``training.config.DM_PER_USD`` converts only for the
original dollar criterion. Uncertainty: a percentile bootstrap over applications.

The out-of-fold predictions the report was computed from are kept beside it
(``economics_predictions.csv``: amount, term, outcome, probability per historical loan), so a
proposed policy can be evaluated the same way before it is published (:func:`impact`, used by
``credit policy diff``): the current column of that table is this report's figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from credit_api.policy import (
    DEFAULT_SCALE,
    GRADES,
    Policy,
    ScoreScale,
    break_even,
    correct_to_population,
    decisions_for,
    good_loan_margin,
)
from credit_api.schema import TARGET
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from training import config

REPORT_FILE = "economics.md"
CURVE_FILE = "economics_profit_curve.png"
RESULT_FILE = "economics.json"
PREDICTIONS_FILE = "economics_predictions.csv"
PREDICTION_COLUMNS = ("amount", "months_loan_duration", TARGET, "probability")
CURVE_POINTS = 101


def evaluate(
    probabilities: np.ndarray,
    frame: pd.DataFrame,
    policy: Policy,
    *,
    seed: int,
    resamples: int = config.BOOTSTRAP_RESAMPLES,
    confidence: float = config.CONFIDENCE,
    scale: ScoreScale = DEFAULT_SCALE,
) -> dict[str, Any]:
    """Evaluate ``policy`` on out-of-fold ``probabilities`` (raw model output, sample scale).

    ``frame`` needs ``amount``, ``months_loan_duration`` and ``default``, row-aligned with the
    probabilities. Returns plain JSON-serialisable data: point estimates, bootstrap intervals, the
    baseline, the original success criteria, a profit-vs-cut-off curve and a sensitivity table.
    """
    raw = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if raw.shape[0] != len(frame):
        raise ValueError(f"{raw.shape[0]} probabilities for {len(frame)} rows")
    if raw.shape[0] == 0 or np.any(~np.isfinite(raw)) or np.any((raw < 0) | (raw > 1)):
        raise ValueError("probabilities must be a non-empty array of finite values within [0, 1]")
    loans = _Loans.from_frame(frame, policy)
    rows = loans.per_row(raw)
    point = {name: float(_ratio(num.sum(), den.sum())) for name, (num, den) in rows.items()}
    intervals = _bootstrap(rows, len(raw), seed=seed, resamples=resamples, confidence=confidence)
    corrected = correct_to_population(raw, policy)
    return {
        "currency": "DM (1973-75)",
        "n": len(raw),
        "defaulters": int(loans.bad.sum()),
        "policy": policy.model_dump(),
        "score_scale": scale.model_dump(),
        "weighting": _weighting_note(policy, loans),
        "reviews": "counted as declined; '*_reviews_approved' count them as approved",
        "point": point,
        "ci": intervals,
        "seed": seed,
        "resamples": resamples,
        "confidence": confidence,
        "scaled": _scaled(point, intervals, policy),
        "criteria": _criteria(point, intervals, policy),
        "curve": _curve(corrected, loans),
        "grades": _grades(corrected, loans, scale),
        "sensitivity": _sensitivity(raw, frame, policy),
        "break_even": {
            "median_months": float(np.median(loans.months)),
            "p_star_at_median_months": float(break_even(np.median(loans.months), policy)),
        },
    }


class _Loans:
    """The historical loans: amount, term, outcome, and the per-row money if booked."""

    def __init__(self, amount: np.ndarray, months: np.ndarray, bad: np.ndarray, policy: Policy) -> None:
        self.amount, self.months, self.bad, self.policy = amount, months, bad, policy
        self.gain = amount * good_loan_margin(months, policy)
        self.loss = amount * policy.loss_given_default
        self.profit = np.where(bad == 1, -self.loss, self.gain)
        self.weight = _population_weights(bad, policy)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, policy: Policy) -> _Loans:
        missing = {"amount", "months_loan_duration", TARGET} - set(frame.columns)
        if missing:
            raise ValueError(f"frame lacks columns {sorted(missing)}")
        bad = frame[TARGET].to_numpy(dtype=np.int64)
        if not set(np.unique(bad)) <= {0, 1}:
            raise ValueError(f"{TARGET} must be 0 or 1")
        return cls(
            frame["amount"].to_numpy(dtype=np.float64),
            frame["months_loan_duration"].to_numpy(dtype=np.float64),
            bad,
            policy,
        )

    def per_row(self, raw: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each metric as (numerator, denominator) per row: metric = sum(num) / sum(den).

        Written this way so the bootstrap is two matrix products per metric.
        """
        decided = decisions_for(correct_to_population(raw, self.policy), self.months, self.policy)
        approved = decided == "approve"
        booked_if_reviews_approved = decided != "decline"
        w, bad, good = self.weight, self.bad, 1 - self.bad
        ones = np.ones_like(w)
        declined_bad = bad * ~approved
        uci_policy = (
            config.UCI_COST_BAD_APPROVED * bad * approved + config.UCI_COST_GOOD_DECLINED * good * ~approved
        )
        uci_optimal_decline = raw > config.UCI_COST_GOOD_DECLINED / (
            config.UCI_COST_GOOD_DECLINED + config.UCI_COST_BAD_APPROVED
        )
        uci_optimal = config.UCI_COST_BAD_APPROVED * bad * ~uci_optimal_decline + (
            config.UCI_COST_GOOD_DECLINED * good * uci_optimal_decline
        )
        return {
            "approval_rate": (w * approved, w),
            "review_rate": (w * (decided == "review"), w),
            "decline_rate": (w * (decided == "decline"), w),
            "share_of_defaulters_declined": (declined_bad.astype(float), bad.astype(float)),
            "share_of_defaulters_declined_reviews_approved": (
                (bad * ~booked_if_reviews_approved).astype(float),
                bad.astype(float),
            ),
            "share_of_good_declined": ((good * ~approved).astype(float), good.astype(float)),
            "default_rate_booked": (w * bad * approved, w * approved),
            "default_rate_baseline": (w * bad, w),
            "profit_per_application": (w * self.profit * approved, w),
            "profit_reviews_approved_per_application": (w * self.profit * booked_if_reviews_approved, w),
            "baseline_profit_per_application": (w * self.profit, w),
            "losses_avoided_per_application": (w * self.loss * declined_bad, w),
            "profit_forgone_per_application": (w * self.gain * good * ~approved, w),
            "net_savings_per_application": (w * self.profit * (approved.astype(float) - 1), w),
            "net_savings_reviews_approved_per_application": (
                w * self.profit * (booked_if_reviews_approved.astype(float) - 1),
                w,
            ),
            "accuracy_at_half": (((raw >= 0.5) == bad).astype(float), ones),
            "decision_accuracy": ((~approved == bad).astype(float), ones),
            "baseline_accuracy": (good.astype(float), ones),
            "uci_cost_per_application": (uci_policy, ones),
            "uci_cost_optimal_threshold": (uci_optimal, ones),
            "uci_cost_baseline": (config.UCI_COST_BAD_APPROVED * bad.astype(float), ones),
        }


def _population_weights(bad: np.ndarray, policy: Policy) -> np.ndarray:
    """Importance weights moving the frame's default mix to the population's (ones if none)."""
    rho = float(bad.mean())
    pi = policy.population_default_rate
    if pi is None or rho in (0.0, 1.0):
        return np.ones(bad.shape[0])
    return np.where(bad == 1, pi / rho, (1 - pi) / (1 - rho))


def _weighting_note(policy: Policy, loans: _Loans) -> str:
    if policy.population_default_rate is None:
        return f"none: money and rates at the sample's default rate ({loans.bad.mean():.0%})"
    return (
        f"bad loans weighted {policy.population_default_rate:g}/{loans.bad.mean():g}, good loans"
        f" {1 - policy.population_default_rate:g}/{1 - loans.bad.mean():g}: money and rates describe"
        f" a population with {policy.population_default_rate:.0%} defaults"
    )


def _ratio(numerator: Any, denominator: Any) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1), np.nan)


def _bootstrap(
    rows: dict[str, tuple[np.ndarray, np.ndarray]], n: int, *, seed: int, resamples: int, confidence: float
) -> dict[str, list[float]]:
    """Percentile intervals: each resample is a multinomial count per application."""
    if resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for name, (num, den) in rows.items():
        values = _ratio(counts @ num, counts @ den)
        if np.isnan(values).all():
            intervals[name] = [float("nan"), float("nan")]
            continue
        lo, hi = np.nanpercentile(values, [tail, 100 - tail])
        intervals[name] = [float(lo), float(hi)]
    return intervals


def _scaled(point: dict[str, float], ci: dict[str, list[float]], policy: Policy) -> dict[str, Any]:
    """Every money figure per 1000 applications and at the configured annual volume, with intervals."""
    out: dict[str, Any] = {}
    suffix = "_per_application"
    for key in (k for k in point if k.endswith(suffix)):
        name = key.removesuffix(suffix)
        for label, factor in (("per_1000", 1000), ("annual", policy.annual_applications)):
            out[f"{name}_{label}"] = point[key] * factor
            if key in ci:
                out[f"{name}_{label}_ci"] = [v * factor for v in ci[key]]
    return out


def _criteria(point: dict[str, float], ci: dict[str, list[float]], policy: Policy) -> list[dict[str, Any]]:
    """The original success criteria, each with its verdict and the assumptions it rests on."""
    savings_dm = point["net_savings_per_application"] * policy.annual_applications
    savings_usd = savings_dm / config.DM_PER_USD
    per_app_usd = point["net_savings_per_application"] / config.DM_PER_USD
    volume_needed = config.SAVINGS_TARGET_USD / per_app_usd if per_app_usd > 0 else None
    declined = point["share_of_defaulters_declined"]
    accuracy = point["accuracy_at_half"]
    return [
        {
            "criterion": "defaulters down at least 10%",
            "value": declined,
            "ci": ci.get("share_of_defaulters_declined"),
            "met": bool(declined >= config.DEFAULTER_REDUCTION_TARGET),
            "assumptions": "share of the defaulters approve-everyone would book that the policy does not"
            " book (reviews not booked); out-of-fold predictions",
        },
        {
            "criterion": "accuracy over 70%",
            "value": accuracy,
            "ci": ci.get("accuracy_at_half"),
            "met": bool(accuracy > config.ACCURACY_TARGET),
            "assumptions": "out-of-fold accuracy of the model at p = 0.5 on the sample; approving everyone"
            f" also scores {point['baseline_accuracy']:.1%}, so 70% is not a meaningful bar; the"
            f" policy's own approve/decline accuracy is {point['decision_accuracy']:.1%} because it"
            " approves whenever the expected profit is positive, not when default is less likely than not",
        },
        {
            "criterion": "more than $1.2M saved",
            "value": savings_usd,
            "ci": [
                v * policy.annual_applications / config.DM_PER_USD for v in ci["net_savings_per_application"]
            ]
            if "net_savings_per_application" in ci
            else None,
            "met": bool(savings_usd > config.SAVINGS_TARGET_USD),
            "applications_needed": volume_needed,
            "assumptions": f"{policy.annual_applications} applications a year; net savings against"
            f" approving everyone, in 1973-75 DM converted at {config.DM_PER_USD} DM per USD (nominal,"
            " no inflation adjustment); reviews counted as declined; "
            + (
                f"population default rate {policy.population_default_rate:.0%}"
                if policy.population_default_rate is not None
                else f"sample default rate {policy.sample_default_rate:.0%}"
            ),
        },
    ]


def _curve(corrected: np.ndarray, loans: _Loans) -> dict[str, list[float]]:
    """Profit per 1000 applications when approving below one uniform cut-off on the corrected p."""
    top = min(1.0, float(np.ceil(corrected.max() * 20) / 20) + 0.05)
    cutoffs = np.linspace(0.0, top, CURVE_POINTS)
    approved = corrected[np.newaxis, :] < cutoffs[:, np.newaxis]
    profit = (approved * (loans.weight * loans.profit)).sum(axis=1) / loans.weight.sum() * 1000
    return {"cutoffs": cutoffs.tolist(), "profit_per_1000": profit.tolist()}


def _grades(corrected: np.ndarray, loans: _Loans, scale: ScoreScale) -> list[dict[str, Any]]:
    """Per risk grade: applications, share (population-weighted) and observed default rate."""
    grades = scale.grades(np.rint(scale.points(corrected)))
    table = []
    for grade in GRADES:
        members = grades == grade
        weight = loans.weight[members]
        table.append(
            {
                "grade": grade,
                "applications": int(members.sum()),
                "share": float(weight.sum() / loans.weight.sum()),
                "default_rate": float(_ratio((weight * loans.bad[members]).sum(), weight.sum())),
                "mean_probability": float(corrected[members].mean()) if members.any() else float("nan"),
            }
        )
    return table


def _sensitivity(raw: np.ndarray, frame: pd.DataFrame, policy: Policy) -> list[dict[str, Any]]:
    """Point estimates when the most uncertain assumptions move: population rate and margin."""
    rates = [None, 0.10, 0.05, 0.03]
    margins = sorted({0.03, policy.annual_margin, 0.08})
    table = []
    for rate in rates:
        for margin in margins:
            variant = policy.model_copy(update={"population_default_rate": rate, "annual_margin": margin})
            loans = _Loans.from_frame(frame, variant)
            point = {name: float(_ratio(n.sum(), d.sum())) for name, (n, d) in loans.per_row(raw).items()}
            table.append(
                {
                    "population_default_rate": rate,
                    "annual_margin": margin,
                    "approval_rate": point["approval_rate"],
                    "review_rate": point["review_rate"],
                    "share_of_defaulters_declined": point["share_of_defaulters_declined"],
                    "net_savings_per_1000": point["net_savings_per_application"] * 1000,
                    "net_savings_annual": point["net_savings_per_application"] * policy.annual_applications,
                }
            )
    return table


def write_report(result: dict[str, Any], reports_dir: Path, *, model: str | None = None) -> Path:
    """Write ``economics.md``, the profit-vs-cut-off PNG and ``economics.json``; return the .md path."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    _plot_curve(result, reports_dir / CURVE_FILE)
    (reports_dir / RESULT_FILE).write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True) + "\n")
    path = reports_dir / REPORT_FILE
    path.write_text(_markdown(result, model))
    return path


def _json_safe(value: Any) -> Any:
    """NaN (a rate with an empty denominator) becomes null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _plot_curve(result: dict[str, Any], path: Path) -> None:
    curve, scaled = result["curve"], result["scaled"]
    figure = Figure(figsize=(7, 4.2), dpi=110)
    axes = figure.add_subplot()
    axes.plot(
        curve["cutoffs"], curve["profit_per_1000"], label="approve when p < cut-off (one cut-off for all)"
    )
    axes.axhline(
        scaled["profit_per_1000"], color="tab:green", linestyle="--", label="policy (cut-off per loan term)"
    )
    axes.axhline(scaled["baseline_profit_per_1000"], color="tab:red", linestyle=":", label="approve everyone")
    axes.axvline(
        result["break_even"]["p_star_at_median_months"],
        color="grey",
        linewidth=0.8,
        label=f"break-even p* at the median term ({result['break_even']['median_months']:g} months)",
    )
    axes.set_xlabel("cut-off on the probability of default" + _corrected_note(result))
    axes.set_ylabel(f"profit per 1000 applications, {result['currency']}")
    axes.set_title("Profit versus cut-off (out-of-fold)")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def _corrected_note(result: dict[str, Any]) -> str:
    rate = result["policy"]["population_default_rate"]
    return f" (corrected to {rate:.0%} population default rate)" if rate is not None else ""


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _interval(values: list[float] | None, fmt: str) -> str:
    return "" if not values else f"{format(values[0], fmt)} to {format(values[1], fmt)}"


def _markdown(result: dict[str, Any], model: str | None) -> str:
    p, ci, s, pol = result["point"], result["ci"], result["scaled"], result["policy"]
    level = f"{result['confidence']:.0%}"
    pct, cur = ".1%", result["currency"]
    rate = pol["population_default_rate"]
    lines = [
        "# Economics of the decision policy",
        "",
        f"Out-of-fold predictions{f' of {model}' if model else ''} on {result['n']} historical loans"
        f" ({result['defaulters']} defaults), evaluated against approving everyone. Generated by"
        " `training/economics.py`; the policy evaluated is the one the function serves"
        " (`credit_api.policy`).",
        "",
        "## Assumptions",
        "",
        "| Assumption | Value |",
        "|---|---|",
        f"| Loss given default | {pol['loss_given_default']:g} (Basel foundation IRB, senior unsecured);"
        " charged on the full amount |",
        f"| Annual net interest margin | {pol['annual_margin']:g}; a good loan earns"
        " amount x margin x months/12 |",
        f"| Review band | expected profit within +-{pol['review_band']:.0%} of a good loan's profit"
        f" (p within +-{pol['review_band']:.0%} of the break-even p*) |",
        f"| Sample default rate | {pol['sample_default_rate']:.0%} (bad loans oversampled) |",
        "| Population default rate | "
        + (f"{rate:.0%}: probabilities prior-shift corrected; {result['weighting']}" if rate else "none")
        + " |",
        f"| Annual applications | {pol['annual_applications']:,} |",
        f"| Currency | {cur}; dollars only for the original criterion, at {config.DM_PER_USD} DM per USD"
        " (1974 average, nominal) |",
        f"| Reviews | {result['reviews']} |",
        f"| Bootstrap | {result['resamples']} resamples of applications, {level} percentile intervals,"
        f" seed {result['seed']} |",
        "",
        "The break-even probability depends on the term: p* = g / (g + LGD) with g = margin x months/12,"
        f" {result['break_even']['p_star_at_median_months']:.3f} at the median term of"
        f" {result['break_even']['median_months']:g} months.",
        "",
        "## Policy against approving everyone",
        "",
        f"| Measure | Policy | {level} interval | Approve everyone |",
        "|---|---|---|---|",
        f"| Approval rate | {p['approval_rate']:{pct}} | {_interval(ci.get('approval_rate'), pct)} | 100% |",
        f"| Review rate | {p['review_rate']:{pct}} | {_interval(ci.get('review_rate'), pct)} | 0% |",
        f"| Decline rate | {p['decline_rate']:{pct}} | {_interval(ci.get('decline_rate'), pct)} | 0% |",
        f"| Share of defaulters not booked | {p['share_of_defaulters_declined']:{pct}} |"
        f" {_interval(ci.get('share_of_defaulters_declined'), pct)} | 0% |",
        f"| ... with reviews approved | {p['share_of_defaulters_declined_reviews_approved']:{pct}} |"
        f" {_interval(ci.get('share_of_defaulters_declined_reviews_approved'), pct)} | 0% |",
        f"| Share of good loans not booked | {p['share_of_good_declined']:{pct}} |"
        f" {_interval(ci.get('share_of_good_declined'), pct)} | 0% |",
        f"| Default rate of booked loans | {p['default_rate_booked']:{pct}} |"
        f" {_interval(ci.get('default_rate_booked'), pct)} | {p['default_rate_baseline']:{pct}} |",
        f"| Profit per 1000 applications | {_money(s['profit_per_1000'])} |"
        f" {_interval(s.get('profit_per_1000_ci'), ',.0f')} | {_money(s['baseline_profit_per_1000'])} |",
        f"| Losses avoided per 1000 | {_money(s['losses_avoided_per_1000'])} |"
        f" {_interval(s.get('losses_avoided_per_1000_ci'), ',.0f')} | |",
        f"| Profit forgone per 1000 | {_money(s['profit_forgone_per_1000'])} |"
        f" {_interval(s.get('profit_forgone_per_1000_ci'), ',.0f')} | |",
        f"| **Net savings per 1000** | **{_money(s['net_savings_per_1000'])}** |"
        f" {_interval(s.get('net_savings_per_1000_ci'), ',.0f')} | |",
        f"| ... with reviews approved | {_money(s['net_savings_reviews_approved_per_1000'])} |"
        f" {_interval(s.get('net_savings_reviews_approved_per_1000_ci'), ',.0f')} | |",
        f"| **Net savings a year** ({pol['annual_applications']:,} applications) |"
        f" **{_money(s['net_savings_annual'])}** | {_interval(s.get('net_savings_annual_ci'), ',.0f')} | |",
        f"| Accuracy at p = 0.5 (sample) | {p['accuracy_at_half']:{pct}} |"
        f" {_interval(ci.get('accuracy_at_half'), pct)} | {p['baseline_accuracy']:{pct}} |",
        f"| Accuracy of the policy's approve/decline (sample) | {p['decision_accuracy']:{pct}} |"
        f" {_interval(ci.get('decision_accuracy'), pct)} | {p['baseline_accuracy']:{pct}} |",
        f"| UCI expected cost per application (5 bad approved, 1 good declined) |"
        f" {p['uci_cost_per_application']:.3f} | {_interval(ci.get('uci_cost_per_application'), '.3f')} |"
        f" {p['uci_cost_baseline']:.3f} |",
        f"| ... of the model at the UCI-optimal cut-off p > 1/6 | {p['uci_cost_optimal_threshold']:.3f} |"
        f" {_interval(ci.get('uci_cost_optimal_threshold'), '.3f')} | |",
        "",
        f"Money in {cur}. Net savings = losses avoided - profit forgone = policy profit - approve-everyone"
        " profit. Reviews are counted as declined: a reviewer with no skill who approved all of them"
        " would give the 'with reviews approved' line instead; one with skill does better than both.",
        "",
        "## Original success criteria",
        "",
        "| Criterion | Value | Met | Under these assumptions |",
        "|---|---|---|---|",
    ]
    for criterion in result["criteria"]:
        value = criterion["value"]
        if criterion["criterion"].startswith("more than"):
            shown = f"{value:,.0f} USD a year ({_interval(criterion['ci'], ',.0f') or 'no interval'})"
            if criterion.get("applications_needed"):
                shown += f"; met from {criterion['applications_needed']:,.0f} applications a year"
            else:
                shown += "; no volume meets it, as the policy saves nothing under these assumptions"
        else:
            shown = f"{value:.1%} ({_interval(criterion['ci'], '.1%')})"
        lines.append(
            f"| {criterion['criterion']} | {shown} | {'yes' if criterion['met'] else 'no'} |"
            f" {criterion['assumptions']} |"
        )
    lines += [
        "",
        "## Risk grades",
        "",
        "Score from the corrected probability (600 at good:bad 50:1, 20 points per doubling); default rates"
        " observed out-of-fold" + (" and population-weighted." if rate else "."),
        "",
        "| Grade | Applications (sample) | Share | Mean predicted p | Observed default rate |",
        "|---|---|---|---|---|",
        *(
            f"| {g['grade']} | {g['applications']} | {g['share']:.1%} | {g['mean_probability']:.1%} |"
            f" {g['default_rate']:.1%} |"
            for g in result["grades"]
        ),
    ]
    lines += [
        "",
        "## Sensitivity to the uncertain assumptions (point estimates)",
        "",
        "| Population default rate | Annual margin | Approval rate | Review rate | Defaulters not booked |"
        f" Net savings per 1000 ({cur}) | Net savings a year |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["sensitivity"]:
        population = (
            f"{row['population_default_rate']:.0%}"
            if row["population_default_rate"] is not None
            else f"none ({pol['sample_default_rate']:.0%})"
        )
        lines.append(
            f"| {population} | {row['annual_margin']:g} | {row['approval_rate']:.1%} |"
            f" {row['review_rate']:.1%} |"
            f" {row['share_of_defaulters_declined']:.1%} | {_money(row['net_savings_per_1000'])} |"
            f" {_money(row['net_savings_annual'])} |"
        )
    lines += [
        "",
        "## Profit versus cut-off",
        "",
        f"![profit versus cut-off]({CURVE_FILE})",
        "",
        "One uniform cut-off on the (corrected) probability of default, against the policy's per-term"
        " cut-off and approving everyone.",
        "",
        "## Caveats",
        "",
        "- 1000 loans from 1973-75, bad loans oversampled to 30%; the population default rate, margin and"
        " volume are assumptions (see `training/config.py`), and the sensitivity table shows how much they"
        " matter.",
        "- Only booked loans have outcomes: declined applicants' outcomes are unknown (reject inference is"
        " out of scope), so the figures are valid for applicants like the ones the bank booked.",
        "- Profit ignores operating and review costs; the loss ignores instalments repaid before default.",
        "",
    ]
    return "\n".join(lines)


def write_predictions(probabilities: np.ndarray, frame: pd.DataFrame, reports_dir: Path) -> Path:
    """Keep the out-of-fold predictions the report used, with the loans they are for.

    Written with 17 significant digits, so every figure re-computed from the file is the report's
    to the last bit.
    """
    raw = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if raw.shape[0] != len(frame):
        raise ValueError(f"{raw.shape[0]} probabilities for {len(frame)} rows")
    table = frame[list(PREDICTION_COLUMNS[:-1])].reset_index(drop=True).assign(probability=raw)
    path = Path(reports_dir) / PREDICTIONS_FILE
    table.to_csv(path, index=False, float_format="%.17g")
    return path


def read_predictions(reports_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(out-of-fold probabilities, loans) as :func:`write_predictions` kept them."""
    path = Path(reports_dir) / PREDICTIONS_FILE
    try:
        table = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} not found: a training run writes it beside {REPORT_FILE}") from exc
    missing = set(PREDICTION_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return table["probability"].to_numpy(dtype=np.float64), table.drop(columns="probability")


IMPACT_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("approval_rate", "Approval rate", "rate"),
    ("review_rate", "Review rate", "rate"),
    ("decline_rate", "Decline rate", "rate"),
    ("share_of_defaulters_declined", "Share of defaulters not booked", "rate"),
    ("share_of_defaulters_declined_reviews_approved", "... with reviews approved", "rate"),
    ("share_of_good_declined", "Share of good loans not booked", "rate"),
    ("default_rate_booked", "Default rate of booked loans", "rate"),
    ("profit_per_1000", "Profit per 1000 applications", "money"),
    ("net_savings_per_1000", "Net savings per 1000 applications", "money"),
    ("net_savings_reviews_approved_per_1000", "... with reviews approved", "money"),
    ("net_savings_annual", "Net savings a year", "money"),
)
"""What a policy change is judged on: the decision mix, the defaulters not booked, the savings.
Each is a figure of :func:`evaluate` (``point``, or ``scaled`` for money). Reviews count as not
booked, as in the report; the "with reviews approved" lines bound the other side, so a wider
review band is not mistaken for savings a reviewer would have to earn."""


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The impact measures of one :func:`evaluate` result."""
    merged = {**result["point"], **result["scaled"]}
    return {name: float(merged[name]) for name, _, _ in IMPACT_MEASURES}


def impact(
    probabilities: np.ndarray, frame: pd.DataFrame, current: Policy, proposed: Policy
) -> list[dict[str, Any]]:
    """Each impact measure under the current and the proposed policy, and the change.

    Both columns come from :func:`evaluate` (point estimates; no bootstrap is needed to compare two
    policies on the same loans), so the current column equals the economics report's figures
    whenever the current policy is the one the report evaluated.
    """
    before = figures(evaluate(probabilities, frame, current, seed=0, resamples=0))
    after = figures(evaluate(probabilities, frame, proposed, seed=0, resamples=0))
    return [
        {
            "measure": name,
            "label": label,
            "kind": kind,
            "current": before[name],
            "proposed": after[name],
            "change": after[name] - before[name],
        }
        for name, label, kind in IMPACT_MEASURES
    ]
