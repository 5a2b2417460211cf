"""The monitoring report's plots, as ``data:image/png;base64`` URIs (the page may load nothing else).

A :class:`matplotlib.figure.Figure` draws on the Agg canvas without pyplot's global state or a display. A plot
whose data is missing (no weeks, no PSI table, no month with a ratio) is left out.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

COLOURS = {"approve": "#2e7d32", "review": "#f9a825", "decline": "#c62828"}
BANDS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00")


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(9, 3))
    return figure, figure.subplots()


def _uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def volumes(report: Mapping[str, Any]) -> str | None:
    weeks = report["volumes"]["weeks"]
    if not weeks:
        return None
    figure, axes = _figure()
    labels = [w["week"] for w in weeks]
    bottom = [0] * len(weeks)
    for decision, colour in COLOURS.items():
        counts = [w[decision] for w in weeks]
        axes.bar(labels, counts, bottom=bottom, color=colour, label=decision)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_ylabel("decisions")
    axes.set_title("Decisions per ISO week")
    axes.tick_params(axis="x", labelrotation=60, labelsize=7)
    axes.legend(fontsize=8)
    return _uri(figure)


def score(report: Mapping[str, Any]) -> str | None:
    found = report.get("drift", {}).get("scores", {}).get("score")
    if not found or not found["bins"]:
        return None
    bins = found["bins"]
    positions = range(len(bins))
    figure, axes = _figure()
    axes.bar(
        [p - 0.2 for p in positions],
        [b["expected"] for b in bins],
        width=0.4,
        label="training",
        color="#90a4ae",
    )
    axes.bar(
        [p + 0.2 for p in positions], [b["actual"] for b in bins], width=0.4, label="recent", color="#1565c0"
    )
    axes.set_xticks(list(positions), [b["bin"] for b in bins], rotation=30, fontsize=7)
    axes.set_ylabel("share of decisions")
    axes.set_title(f"Score distribution (PSI {found['psi']:.3f})")
    axes.legend(fontsize=8)
    return _uri(figure)


def fairness(report: Mapping[str, Any]) -> str | None:
    months = report["fairness"]["months"]
    if not months:
        return None
    figure, axes = _figure()
    labels = [m["month"] for m in months]
    least = report["thresholds"]["min_band_decisions"]
    for i, band in enumerate(b["band"] for b in months[0]["bands"]):
        found = [next(b for b in m["bands"] if b["band"] == band) for m in months]
        rates = [b["approval_rate"] if b["n"] >= least else float("nan") for b in found]
        axes.plot(labels, rates, marker="o", label=band, color=BANDS[i % len(BANDS)])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("approval rate")
    axes.set_title(f"Approval rate by age band per month (bands with {least}+ decisions in the month)")
    axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes.legend(fontsize=8, ncol=4)
    return _uri(figure)


def plots(report: Mapping[str, Any]) -> dict[str, str]:
    """Every plot the report has data for, by the name :func:`training.monitoring_html.render` looks up."""
    drawn = {"volumes": volumes(report), "score": score(report), "fairness": fairness(report)}
    return {name: uri for name, uri in drawn.items() if uri}
