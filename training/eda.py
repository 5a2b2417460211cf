"""Exploratory analysis of ``data/credit.csv``, written to ``reports/eda.md`` with PNG plots.

Class balance, the default rate against each input, the information value of each input (how
well it separates good from bad on its own, the scorecard practitioner's screen), and how the
inputs relate to each other: Spearman correlation for the numbers, Cramér's V across all inputs
(numbers binned). Run ``credit eda``; ``credit train`` runs it too.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from credit_api.schema import BY_NAME, FEATURE_NAMES, NUMERIC, TARGET
from matplotlib.figure import Figure

REPORT = "eda.md"
BALANCE_PNG = "eda_class_balance.png"
RATES_PNG = "eda_default_rate_by_input.png"
SPEARMAN_PNG = "eda_spearman.png"
CRAMERS_PNG = "eda_cramers_v.png"
NUMERIC_BINS = 5
"""Quantile bins for a number with more distinct values than this; fewer are used as they are."""


def bins(frame: pd.DataFrame, name: str) -> pd.Categorical:
    """The groups an input is summarised by: its codes, its values if few, else quantile bins.

    Numbers are integers, so a bin ``(a, b]`` is labelled ``a+1-b``; groups keep their natural order.
    """
    column = frame[name]
    if BY_NAME[name].categorical:
        return pd.Categorical(column, categories=list(BY_NAME[name].codes))
    values = sorted(column.unique())
    if len(values) <= NUMERIC_BINS:
        return pd.Categorical(column.astype(str), categories=[str(v) for v in values])
    edges = np.unique(np.quantile(column, np.linspace(0, 1, NUMERIC_BINS + 1), method="inverted_cdf"))
    labels = [f"{int(edges[0])}-{int(edges[1])}"]
    labels += [f"{int(lo) + 1}-{int(hi)}" for lo, hi in itertools.pairwise(edges[1:])]
    return pd.cut(column, edges, labels=labels, include_lowest=True)


def default_rates(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    grouped = frame.groupby(bins(frame, name), observed=False)[TARGET]
    return pd.DataFrame({"applicants": grouped.size(), "default_rate": grouped.mean()})


def information_value(frame: pd.DataFrame, name: str, smoothing: float = 0.5) -> float:
    """Sum over groups of (share of goods - share of bads) x WoE; empty cells get ``smoothing``."""
    counts = pd.crosstab(bins(frame, name), frame[TARGET]).reindex(columns=[0, 1], fill_value=0)
    good = (counts[0] + smoothing) / (counts[0] + smoothing).sum()
    bad = (counts[1] + smoothing) / (counts[1] + smoothing).sum()
    return float(((good - bad) * np.log(good / bad)).sum())


def strength(iv: float) -> str:
    """Siddiqi's (2006) customary reading of an information value."""
    for limit, word in ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong")):
        if iv < limit:
            return word
    return "very strong (check for leakage)"


def cramers_v(x: pd.Series, y: pd.Series) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) between two categorical series."""
    table = pd.crosstab(x, y).to_numpy(dtype=float)
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    r, k = table.shape
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_corr, k_corr = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corr - 1, r_corr - 1)
    return float(np.sqrt(phi2 / denominator)) if denominator > 0 else 0.0


def cramers_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    groups = {name: pd.Series(np.asarray(bins(frame, name), dtype=str)) for name in FEATURE_NAMES}
    matrix = pd.DataFrame(1.0, index=list(FEATURE_NAMES), columns=list(FEATURE_NAMES))
    for i, a in enumerate(FEATURE_NAMES):
        for b in FEATURE_NAMES[i + 1 :]:
            matrix.loc[a, b] = matrix.loc[b, a] = cramers_v(groups[a], groups[b])
    return matrix


def _text_colour(value: float, *, signed: bool) -> str:
    """Readable on the cell: diverging maps are dark at both ends, viridis only at the low end."""
    dark = abs(value) > 0.6 if signed else value < 0.55
    return "white" if dark else "black"


def _heatmap(matrix: pd.DataFrame, title: str, path: Path, *, signed: bool) -> None:
    figure = Figure(figsize=(9, 7.5), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(
        matrix.to_numpy(), cmap="RdBu_r" if signed else "viridis", vmin=-1 if signed else 0, vmax=1
    )
    axes.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix.to_numpy()):
        axes.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=6,
            color=_text_colour(value, signed=signed),
        )
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.savefig(path, dpi=110)


def _balance_plot(frame: pd.DataFrame, path: Path) -> None:
    counts = frame[TARGET].value_counts().reindex([0, 1], fill_value=0)
    figure = Figure(figsize=(4.5, 3.2), layout="constrained")
    axes = figure.subplots()
    bars = axes.bar(["good (0)", "bad (1)"], counts.to_numpy(), color=["#4c956c", "#d1495b"])
    axes.bar_label(bars, [f"{c} ({c / len(frame):.0%})" for c in counts])
    axes.set_ylabel("applicants")
    axes.set_title("Class balance (bad loans oversampled)")
    figure.savefig(path, dpi=110)


def _rates_plot(frame: pd.DataFrame, path: Path) -> None:
    overall = frame[TARGET].mean()
    figure = Figure(figsize=(16, 15), layout="constrained")
    for axes, name in zip(figure.subplots(4, 4).ravel(), FEATURE_NAMES, strict=True):
        rates = default_rates(frame, name)
        axes.bar(range(len(rates)), rates["default_rate"].fillna(0), color="#457b9d")
        axes.axhline(overall, color="#d1495b", linestyle="--", linewidth=1)
        axes.set_xticks(range(len(rates)), [str(i) for i in rates.index], rotation=45, ha="right", fontsize=7)
        for x, n in enumerate(rates["applicants"]):
            axes.text(x, 0.01, str(n), ha="center", fontsize=6, color="white")
        axes.set_ylim(0, 0.75)
        axes.set_title(name, fontsize=10)
    figure.suptitle(f"Default rate by input (dashed: overall {overall:.0%}; white: applicants per group)")
    figure.savefig(path, dpi=80)


def write(frame: pd.DataFrame, reports_dir: Path, *, data_sha256: str | None = None) -> Path:
    """Write the EDA Markdown and plots for ``frame``; returns the Markdown path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    _balance_plot(frame, reports_dir / BALANCE_PNG)
    _rates_plot(frame, reports_dir / RATES_PNG)
    spearman = frame[[*NUMERIC, TARGET]].corr(method="spearman")
    _heatmap(
        spearman, "Spearman correlation: numeric inputs and default", reports_dir / SPEARMAN_PNG, signed=True
    )
    cramers = cramers_matrix(frame)
    _heatmap(cramers, "Cramér's V (bias-corrected), numbers binned", reports_dir / CRAMERS_PNG, signed=False)
    path = reports_dir / REPORT
    path.write_text(_markdown(frame, spearman, cramers, data_sha256), encoding="utf-8")
    return path


def _markdown(
    frame: pd.DataFrame, spearman: pd.DataFrame, cramers: pd.DataFrame, data_sha256: str | None
) -> str:
    n, bad = len(frame), int(frame[TARGET].sum())
    ivs = sorted(((information_value(frame, name), name) for name in FEATURE_NAMES), reverse=True)
    lines = [
        "# Exploratory analysis: German credit (16 inputs)",
        "",
        f"Data: `data/credit.csv`, {n} applicants"
        + (f", sha256 `{data_sha256}`" if data_sha256 else "")
        + ". Generated by `credit eda`; see `data/README.md` for provenance and caveats.",
        "",
        "## Class balance",
        "",
        f"{n - bad} good ({(n - bad) / n:.0%}) and {bad} bad ({bad / n:.0%}). Bad loans were oversampled:"
        " the real share in the 1973-75 portfolio was much lower, so probabilities are on the sample's"
        " scale unless corrected (`training/config.py`, `POPULATION_DEFAULT_RATE`). Approving everyone"
        f" is {(n - bad) / n:.0%} accurate here.",
        "",
        f"![class balance]({BALANCE_PNG})",
        "",
        "## Information value",
        "",
        "Each input alone, grouped by code, by value (five or fewer distinct values) or into"
        f" {NUMERIC_BINS} quantile bins; strength as customarily read (Siddiqi 2006).",
        "",
        "| input | IV | strength |",
        "| --- | ---: | --- |",
        *(f"| {name} | {iv:.3f} | {strength(iv)} |" for iv, name in ivs),
        "",
        "An IV above 0.5 usually means the input encodes the outcome. Here the strongest, the checking"
        " account balance, is known when the application is made (it is the classic strongest input"
        " of this data set), so it is kept.",
        "",
        "## Default rate by input",
        "",
        f"![default rate by input]({RATES_PNG})",
        "",
    ]
    for name in FEATURE_NAMES:
        rates = default_rates(frame, name)
        lines += [f"### {name}", "", "| group | applicants | default rate |", "| --- | ---: | ---: |"]
        lines += [
            f"| {group} | {int(row.applicants)} | {row.default_rate:.1%} |"
            if row.applicants
            else f"| {group} | 0 | - |"
            for group, row in rates.iterrows()
        ]
        lines.append("")
    strongest = cramers.where(~np.eye(len(cramers), dtype=bool)).stack().sort_values(ascending=False)
    pairs = [(a, b, v) for (a, b), v in strongest.items() if a < b][:6]
    lines += [
        "## Correlations",
        "",
        "Spearman rank correlation of the numeric inputs with each other and with default:",
        "",
        f"![Spearman]({SPEARMAN_PNG})",
        "",
        "| input | Spearman with default |",
        "| --- | ---: |",
        *(f"| {name} | {spearman.loc[name, TARGET]:+.3f} |" for name in NUMERIC),
        "",
        "Cramér's V (bias-corrected) between all inputs, numbers binned as above:",
        "",
        f"![Cramér's V]({CRAMERS_PNG})",
        "",
        "Strongest associations: "
        + "; ".join(f"{a} ~ {b} ({v:.2f})" for a, b, v in pairs)
        + ". Loan amount and duration go together, so the models also see the monthly payment"
        " (amount / months) that neither shows alone.",
        "",
        "## Caveats",
        "",
        "- Bad loans are oversampled (30% here); the population default rate was much lower.",
        "- Amounts are Deutsche Mark of 1973-75; the data are fifty years old.",
        "- `percent_of_income` is a band, not a percentage; its coding is disputed (`data/README.md`).",
        "",
    ]
    return "\n".join(lines)
