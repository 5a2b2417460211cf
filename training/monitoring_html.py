"""The monitoring report as one self-contained HTML page, for a risk officer.

Served under a strict Content-Security-Policy, so: no ``<script>``, no external URL, styles
only in the ``<style>`` element of ``<head>``, images only as ``data:`` URIs
(:mod:`training.monitoring_plots`). Every value from the report is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; max-width: 72rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; padding: 0.1rem 0.45rem; border-radius: 0.2rem; white-space: nowrap; }
.green { background: #d8f0d8; color: #0b5d0b; } .amber { background: #fbe7c2; color: #7a4a00; }
.red { background: #f6cfcf; color: #8a1010; } .insufficient { background: #e6e6e6; color: #555; }
.provisional { background: #fff4d6; border-left: 4px solid #c98a00; padding: 0.4rem 0.8rem; }
.note { color: #555; font-size: 0.9rem; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""
STATUS_WORDS = {
    "green": "green: within tolerance",
    "amber": "amber: watch and explain at the next model review",
    "red": "red: needs action",
    "insufficient": "insufficient data: too few observations to rate",
}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def badge(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(status)}</span>'


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(values: Sequence[float | None]) -> str:
    lo, hi = values
    return "-" if lo is None or hi is None else f"{lo:.3f} to {hi:.3f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table of already escaped cells (``numeric``: indexes of right-aligned columns)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def provisional(measure: Mapping[str, Any]) -> str:
    if measure.get("maturity") != "immature":
        return ""
    return (
        '<p class="provisional">Provisional: these figures use loans decided less than the performance'
        " window ago. Young loans have had less time to default, so default rates and AUC may still change."
        " They are not final.</p>"
    )


def section_headline(report: Mapping[str, Any]) -> str:
    rows = [(_e(line["label"]), badge(line["status"]), _e(line["summary"])) for line in report["headline"]]
    legend = "".join(f"<li>{badge(s)} {_e(words)}</li>" for s, words in STATUS_WORDS.items())
    return (
        f"<h2>Summary</h2><p>Overall status: {badge(report['status'])}</p>"
        + table(("Measure", "Status", "What it says"), rows)
        + f'<ul class="note">{legend}</ul>'
        '<p class="note">The overall status is the worst rated measure among those about the champion;'
        " outcome maturity and the shadow challenger are shown for information.</p>"
    )


def section_volumes(report: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    m = report["volumes"]
    rows = [
        (
            _e(w["week"]),
            _e(w["n"]),
            _e(w["approve"]),
            _e(w["review"]),
            _e(w["decline"]),
            _e(pct(w["approve_share"])),
        )
        for w in m["weeks"]
    ]
    return (
        f"<h2>Volumes and decision mix per week {badge(m['status'])}</h2>"
        '<p class="note">Status compares the latest week\'s approval share with the earlier weeks shown.</p>'
        + _img(plots.get("volumes"), "Decisions per week by decision")
        + table(("ISO week", "Decisions", "Approve", "Review", "Decline", "Approved"), rows, (1, 2, 3, 4, 5))
    )


def _bins(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [
        (_e(r["bin"]), _e(pct(r["expected"])), _e(pct(r["actual"])), _e(num(r.get("contribution"), 4)))
        for r in rows
    ]
    return table(("Bin", "Expected (training)", "Actual (recent)", "PSI contribution"), cells, (1, 2, 3))


def section_drift(report: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    m = report["drift"]
    out = [f"<h2>Population stability {badge(m['status'])}</h2>"]
    if "error" in m:
        return out[0] + f"<p>{_e(m['error'])}</p>"
    t = report["thresholds"]
    out.append(
        f'<p class="note">Decisions of the last {_e(m["window_days"])} days ({_e(m["n"])}; scored'
        " by the champion:"
        f" {_e(m['scored_by_champion'])}) against the champion's training data. PSI below"
        f" {_e(t['psi_amber'])} is"
        f" stable, up to {_e(t['psi_red'])} a moderate shift, above it a significant shift.</p>"
    )
    everything = {**m["scores"], **m["inputs"]}
    summary_rows = [
        (_e(name), _e(v["n"]), _e(num(v["psi"], 4)), badge(v["status"]))
        for name, v in sorted(everything.items(), key=lambda kv: -(kv[1]["psi"] or 0))
    ]
    out.append(table(("Variable", "Values", "PSI", "Status"), summary_rows, (1, 2)))
    out.append(_img(plots.get("score"), "Score distribution, training against recent"))
    grade = m["grades"]
    out.append(
        f'<h3>Risk grades {badge(grade["status"])}</h3><p class="note">Expected shares'
        f" {_e(grade['reference'])}"
        f" (uniform within each score bin). PSI {_e(num(grade['psi'], 4))}.</p>"
    )
    out.append(_bins([{**r, "contribution": None} for r in grade["bins"]]))
    out.append("<h3>Characteristic analysis: which bins moved</h3>")
    for name, v in sorted(everything.items()):
        if v["bins"]:
            out.append(
                f"<h4>{_e(name)} (PSI {_e(num(v['psi'], 4))}) {badge(v['status'])}</h4>" + _bins(v["bins"])
            )
    return "".join(out)


def _read_note(m: Mapping[str, Any]) -> str:
    """Says which decisions were counted when the report read a window, not the whole log."""
    if not m.get("decisions_read_from"):
        return ""
    return (
        f" Decisions counted: those made since {_e(m['decisions_read_from'][:10])}; older ones were read"
        f" only when they have an outcome ({_e(m['outcomes_all_ages'])} outcomes of all ages)."
    )


def section_maturity(report: Mapping[str, Any]) -> str:
    m = report["maturity"]
    ages = m["decision_age_days"]
    rows = [
        (_e(b["age"]), _e("not read" if b["decisions"] is None else b["decisions"]), _e(b["outcomes"]))
        for b in m["by_age"]
    ]
    return (
        f"<h2>Outcome maturity {badge(m['status'])}</h2>"
        f"<p>{_e(m['with_outcome'])} of {_e(m['decisions'])} decisions"
        f" ({_e(pct(m['outcome_share']))}) have a recorded"
        " outcome. A loan's outcome counts as final (mature) only"
        f" {_e(m['performance_window_days'])} days after its"
        f" decision: {_e(m['mature_outcomes'])} outcomes are mature ({_e(m['mature_defaults'])}"
        " defaults).</p>"
        f'<p class="note">Decision ages: youngest {_e(ages["min"])} days, median {_e(ages["median"])},'
        f" oldest {_e(ages['max'])}.{_read_note(m)}</p>"
        + table(("Decision age", "Decisions", "With outcome"), rows, (1, 2))
    )


def section_performance(report: Mapping[str, Any]) -> str:
    m = report["performance"]
    body = (
        f"<p>ROC AUC {_e(num(m['auc']))} (95% bootstrap interval {_e(interval(m['auc_interval']))}),"
        f" Gini {_e(num(m['gini']))} ({_e(interval(m['gini_interval']))}), on {_e(m['n'])} loans with"
        f" {_e(m['defaults'])} defaults.</p>"
        if m["auc"] is not None
        else f"<p>{_e(m['n'])} loans with an outcome, {_e(m['defaults'])} defaults: too few for an AUC.</p>"
    )
    return f"<h2>Discrimination {badge(m['status'])}</h2>" + provisional(m) + body


def section_calibration(report: Mapping[str, Any], name: str, title: str) -> str:
    m = report[name]
    rows = [
        (
            _e(g["group"]),
            _e(g["n"]),
            _e(g["defaults"]),
            _e(pct(g["observed_rate"])),
            _e(pct(g["predicted_rate"])),
            _e(num(g["p_value"])),
            badge(g["status"]),
        )
        for g in m["groups"]
    ]
    return (
        f"<h2>{_e(title)} {badge(m['status'])}</h2>"
        + provisional(m)
        + '<p class="note">Predicted: the mean probability of default the decisions carried.'
        " p-value: two-sided"
        " exact binomial test of the observed defaults under the predicted rate (low: the model is off).</p>"
        + table(
            ("Group", "Loans", "Defaults", "Observed", "Predicted", "p-value", "Status"),
            rows,
            (1, 2, 3, 4, 5),
        )
    )


def section_fairness(report: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    m = report["fairness"]
    bands = [b["band"] for b in m["overall"]["bands"]]
    rows = [
        (
            _e(p["month"]),
            *(_e(pct(b["approval_rate"])) + f" ({_e(b['n'])})" for b in p["bands"]),
            _e(num(p["ratio"])),
            badge(p["status"]),
        )
        for p in [*m["months"], {"month": "all months shown", **m["overall"]}]
    ]
    numeric = tuple(range(1, len(bands) + 2))
    return (
        f"<h2>Approval rate by age band {badge(m['status'])}</h2>"
        '<p class="note">Approval rate (decisions in brackets) per age band. Ratio: lowest band'
        " rate over the"
        f" highest, bands with fewer than {_e(report['thresholds']['min_band_decisions'])}"
        " decisions left out; the"
        f" four-fifths rule of thumb asks for at least {_e(m['floor'])}.</p>"
        + _img(plots.get("fairness"), "Approval rate by age band per month")
        + table(("Month", *bands, "Ratio", "Status"), rows, numeric)
    )


def section_shadow(report: Mapping[str, Any]) -> str:
    m = report["shadow"]
    if m is None:
        return "<h2>Shadow challenger</h2><p>No shadow challenger scored any decision in the log.</p>"
    if "error" in m:
        return f"<h2>Shadow challenger {badge(m['status'])}</h2><p>{_e(m['error'])}</p>"
    auc = m["auc"]
    swaps = m["swaps"]
    cross = [(_e(a), *(_e(row[b]) for b in row)) for a, row in m["decisions"].items()]
    return (
        f"<h2>Shadow challenger {badge(m['status'])}</h2>"
        f"<p>{_e(m['shadow_version'])} scored {_e(m['n'])} decisions beside the champion; same decision on"
        f" {_e(pct(m['agreement']))}. Swap set: champion approves and shadow declines"
        f" {_e(swaps['champion_approves_shadow_declines'])}, champion declines and shadow approves"
        f" {_e(swaps['champion_declines_shadow_approves'])} ({_e(pct(m['swap_share']))}).</p>"
        f"<p>On the same {_e(auc['n'])} loans with an outcome ({_e(auc['defaults'])} defaults): champion AUC"
        f" {_e(num(auc['champion']))}, shadow AUC {_e(num(auc['shadow']))}.</p>"
        + table(("Champion \\ shadow", "approve", "review", "decline"), cross, (1, 2, 3))
        + '<p class="note">Informational: the shadow does not decide, so it does not count toward'
        " the overall status.</p>"
    )


def section_versions(report: Mapping[str, Any]) -> str:
    m = report["versions"]

    def counts(found: Mapping[str, int]) -> str:
        return "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in sorted(found.items()))

    rows = [(_e(w["week"]), counts(w["model_versions"]), counts(w["policy_versions"])) for w in m["weeks"]]
    return (
        f"<h2>Model and policy versions {badge(m['status'])}</h2>"
        f'<p class="note">Champion now: {_e(m["champion_version"])}.</p>'
        + table(("ISO week", "Model versions (decisions)", "Policy versions (decisions)"), rows)
    )


def _img(uri: str | None, alt: str) -> str:
    return f'<p><img src="{_e(uri)}" alt="{_e(alt)}"></p>' if uri and uri.startswith("data:image/") else ""


def render(report: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The page; ``plots``: name -> ``data:image/png;base64,...`` URI (others are dropped)."""
    plots = plots or {}
    champion = report["champion"]
    parts = [
        section_headline(report),
        section_volumes(report, plots),
        section_drift(report, plots),
        section_maturity(report),
        section_performance(report),
        section_calibration(
            report, "calibration_by_grade", "Observed against predicted default rate, by risk grade"
        ),
        section_calibration(
            report, "calibration_by_age_band", "Observed against predicted default rate, by age band"
        ),
        section_fairness(report, plots),
        section_shadow(report),
        section_versions(report),
    ]
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Model monitoring report {_e(report['date'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>Model monitoring report, {_e(report['date'])}</h1>"
        f'<p class="note">Champion {_e(champion["model_version"])} (built {_e(champion["created_at"])}).'
        f" {_e(report['decisions'])} decisions up to {_e(report['as_of'])};"
        f" generated {_e(report['generated_at'])}.</p>"
    )
    return head + "".join(parts) + "</body></html>"
