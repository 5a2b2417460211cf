"""The model comparison: the champion rule, and ``reports/model_comparison.md`` with its plots.

Champion rule (written into the report): the highest mean repeated-CV ROC AUC wins, because the
decision policy ranks applicants against a cut-off and AUC measures exactly that ranking. A
candidate within ``AUC_TIE`` of the best counts as tied; ties go to the lower mean expected UCI
cost, then to the smaller ONNX file. Accuracy at 0.5 is reported but not ranked on: the policy does
not cut at 0.5, and approving everyone already scores 0.70 on this sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

REPORT = "model_comparison.md"
RESULT = "model_comparison.json"
ROC_PNG = "model_comparison_roc.png"
RELIABILITY_PNG = "model_comparison_reliability.png"
AUC_TIE = 0.002
TARGET_AUC = 0.79
TARGET_ACCURACY = 0.76
PUBLISHED_AUC = 0.795
"""Best published AutoML ROC AUC on all 20 attributes (issue 2's reference point)."""

RULE = (
    f"Highest mean repeated-CV ROC AUC; candidates within {AUC_TIE} of the best are tied, and ties go"
    " to the lower mean expected UCI cost, then to the smaller ONNX file. (AUC because the policy ranks"
    " applicants against a cut-off; accuracy at 0.5 is not ranked on: the policy does not cut at 0.5,"
    " and approving everyone already scores 0.70.)"
)


@dataclass
class Row:
    """One candidate's line in the comparison."""

    name: str
    label: str
    cv: dict[str, dict[str, float]]
    fit_seconds: float
    final_fit_seconds: float
    onnx_bytes: int
    latency_ms: dict[str, float]
    parity_max_diff: float
    final_params: dict[str, Any]
    fold_params: list[dict[str, Any]]


def choose_champion(rows: Sequence[Row]) -> Row:
    """Apply the champion rule (module docstring) to the candidates."""
    best = max(row.cv["roc_auc"]["mean"] for row in rows)
    tied = [row for row in rows if row.cv["roc_auc"]["mean"] >= best - AUC_TIE]
    return min(tied, key=lambda row: (row.cv["expected_cost"]["mean"], row.onnx_bytes))


def _plot_roc(labels: np.ndarray, oof: Mapping[str, np.ndarray], rows: Sequence[Row], path: Path) -> None:
    figure = Figure(figsize=(6, 5.5), layout="constrained")
    axes = figure.subplots()
    for row in rows:
        probabilities = oof[row.name]
        fpr, tpr, _ = roc_curve(np.tile(labels, probabilities.shape[0]), probabilities.reshape(-1))
        axes.plot(fpr, tpr, label=f"{row.name} ({row.cv['roc_auc']['mean']:.3f})", linewidth=1.4)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false positive rate (good applicants declined)")
    axes.set_ylabel("true positive rate (bad applicants declined)")
    axes.set_title("ROC, out-of-fold, all repeats pooled (legend: mean fold AUC)")
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path, dpi=100)


def _plot_reliability(calibration: Mapping[str, Any], champion: str, path: Path) -> None:
    figure = Figure(figsize=(5.5, 5.2), layout="constrained")
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    before, after = calibration["reliability_before"], calibration["reliability_after"]
    axes.plot(
        before["predicted"],
        before["observed"],
        marker="o",
        label=f"{champion} (Brier {calibration['brier_before']:.4f})",
    )
    axes.plot(
        after["predicted"],
        after["observed"],
        marker="s",
        linestyle="--",
        label=f"+ Platt, cross-fitted (Brier {calibration['brier_after']:.4f})",
    )
    axes.set_xlabel("mean predicted probability of default (decile bins)")
    axes.set_ylabel("observed default rate")
    axes.set_title("Reliability of the champion, out-of-fold")
    axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=100)


def _fmt(summary: Mapping[str, float], digits: int = 3) -> str:
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def plain_params(value: Any) -> Any:
    """Hyperparameters as plain JSON values (numpy scalars become Python numbers)."""
    if isinstance(value, Mapping):
        return {key: plain_params(item) for key, item in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _params(params: Mapping[str, Any]) -> str:
    return json.dumps(plain_params(params), sort_keys=True)


def _param_spread(fold_params: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for params in fold_params:
        key = _params(params)
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    shown = "; ".join(f"{n}x `{key}`" for key, n in ranked[:3])
    return shown + (f"; {len(ranked) - 3} other settings" if len(ranked) > 3 else "")


def write_report(
    reports_dir: Path,
    *,
    rows: Sequence[Row],
    champion: Row,
    champion_cv: Mapping[str, Mapping[str, float]],
    labels: np.ndarray,
    oof: Mapping[str, np.ndarray],
    calibration: Mapping[str, Any],
    calibrated: bool,
    protocol: Mapping[str, Any],
    runtime_seconds: Mapping[str, float],
    parity: Mapping[str, float],
    manifest_version: str,
) -> Path:
    """Write the Markdown report, its two plots and a JSON copy of the numbers; return the .md path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    _plot_roc(labels, oof, rows, reports_dir / ROC_PNG)
    _plot_reliability(calibration, champion.name, reports_dir / RELIABILITY_PNG)
    data = {
        "protocol": dict(protocol),
        "rule": RULE,
        "champion": champion.name,
        "champion_cv": dict(champion_cv),
        "calibrated": calibrated,
        "calibration": {k: v for k, v in calibration.items() if isinstance(v, float | str)},
        "runtime_seconds": dict(runtime_seconds),
        "parity": dict(parity),
        "model_version": manifest_version,
        "candidates": {
            row.name: {
                "label": row.label,
                "cv": row.cv,
                "fit_seconds": row.fit_seconds,
                "final_fit_seconds": row.final_fit_seconds,
                "onnx_bytes": row.onnx_bytes,
                "latency_ms": row.latency_ms,
                "parity_max_diff": row.parity_max_diff,
                "final_params": plain_params(row.final_params),
            }
            for row in rows
        },
    }
    (reports_dir / RESULT).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    path = reports_dir / REPORT
    path.write_text(_markdown(rows, champion, champion_cv, calibration, calibrated, data), encoding="utf-8")
    return path


def _margins(cv: Mapping[str, Mapping[str, float]], folds: int) -> str:
    """How far the champion is from each target, against the uncertainty of a mean over the folds."""
    parts = []
    for name, target in (("roc_auc", TARGET_AUC), ("accuracy", TARGET_ACCURACY)):
        error = cv[name]["std"] / np.sqrt(folds)
        margin = cv[name]["mean"] - target
        parts.append(f"{name} {margin:+.4f} (standard error {error:.4f}, {margin / error:+.1f} SE)")
    return (
        "Margins over the targets: "
        + "; ".join(parts)
        + f". The standard error is the fold standard deviation / sqrt({folds}); the outer folds share"
        " training rows, so it understates the uncertainty. A margin within about two standard errors"
        " is met on the estimate, not beyond doubt."
    )


def _markdown(
    rows: Sequence[Row],
    champion: Row,
    champion_cv: Mapping[str, Mapping[str, float]],
    calibration: Mapping[str, Any],
    calibrated: bool,
    data: Mapping[str, Any],
) -> str:
    protocol, runtime, parity = data["protocol"], data["runtime_seconds"], data["parity"]
    auc, accuracy = champion_cv["roc_auc"]["mean"], champion_cv["accuracy"]["mean"]
    met = auc >= TARGET_AUC and accuracy >= TARGET_ACCURACY
    outer = f"{protocol['outer_splits']}-fold x {protocol['outer_repeats']}"
    lines = [
        "# Model comparison",
        "",
        f"Generated by `credit train` (seed {protocol['seed']}"
        f"{', quick search' if protocol['quick'] else ''}); model `{data['model_version']}`.",
        f"Search and evaluation took {runtime['nested_cv']:.0f} s, the whole run"
        f" {runtime['total']:.0f} s, with {protocol['n_jobs']} worker processes (machine load average"
        f" {protocol['load_average']:.1f} at the start; other jobs share the CPU).",
        "",
        "## Protocol",
        "",
        f"- Data: `data/credit.csv`, {protocol['rows']} applicants, 16 inputs, {protocol['default_rate']:.0%}"
        " bad (oversampled; see `data/README.md`).",
        f"- Nested cross-validation. Outer: stratified {outer} repeats = {protocol['outer_folds']} folds;"
        " every number below is the mean ± standard deviation over those outer folds. Inner: in each outer"
        f" fold, each candidate's hyperparameters are chosen on the outer-training rows only"
        f" ({protocol['inner_splits']}-fold stratified CV; the random forest by its out-of-bag"
        " predictions; boosting also picks its number of trees from staged predictions), by"
        f" {protocol['selection']}. The chosen setting is refit on the outer-training rows and"
        " scores the outer-test rows, which no choice was made on.",
        "- The ensemble averages its tuned members' probabilities in the same fold (what a soft"
        " `VotingClassifier` of them predicts); it has no hyperparameters of its own.",
        "- The deployed model of each candidate uses the setting chosen by the same search on all rows"
        f" ({protocol['final_inner_splits']}-fold inner CV), refit on all rows.",
        "- Encodings (`training/features.py`): one dummy per code for every model; logistic regression"
        " gets logs of amount, duration and age; trees get the raw numbers plus the monthly payment"
        " (amount / months).",
        "- Metrics: ROC AUC; Gini = 2 AUC - 1; KS = the largest gap between the score distributions of"
        " bad and good; accuracy at a 0.5 cut-off; Brier score; expected cost per applicant under the"
        " UCI cost matrix (5 for a bad applicant approved, 1 for a good one declined) at its"
        " cost-optimal cut-off 1/6, with the accuracy at that cut-off beside it. Fit time: refitting the"
        " chosen setting on an outer-training set (800 rows), one core. ONNX: the deployed model"
        " converted by skl2onnx, size of the file, single-row latency through `credit_api.scoring.Scorer`"
        " (median and 95th percentile of repeated runs on one thread), and the largest absolute"
        " difference from scikit-learn on the training rows.",
        "",
        "## Results",
        "",
        "| candidate | ROC AUC | Gini | KS | accuracy (0.5) | Brier | cost (1/6) | accuracy (1/6)"
        " | fit s | ONNX KB | latency ms (p50 / p95) | parity (max diff) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(rows, key=lambda r: -r.cv["roc_auc"]["mean"]):
        name = f"**{row.name}** (champion)" if row is champion else row.name
        cv = row.cv
        lines.append(
            f"| {name} | {_fmt(cv['roc_auc'])} | {_fmt(cv['gini'])} | {_fmt(cv['ks'])}"
            f" | {_fmt(cv['accuracy'])} | {_fmt(cv['brier'], 4)} | {_fmt(cv['expected_cost'])}"
            f" | {_fmt(cv['accuracy_at_cost_cutoff'])} | {row.fit_seconds:.3f} | {row.onnx_bytes / 1024:,.0f}"
            f" | {row.latency_ms['p50']:.3f} / {row.latency_ms['p95']:.3f} | {row.parity_max_diff:.1e} |"
        )
    lines += [
        "",
        "Baseline: `decision_tree` is the original system's model family. Approving everyone scores"
        " accuracy 0.700 and expected cost 1.500 (5 x 30%); declining everyone costs 0.700.",
        "",
        f"![ROC curves]({ROC_PNG})",
        "",
        "## Champion",
        "",
        f"Rule: {RULE}",
        "",
        f"Champion: **{champion.name}** ({champion.label}{', calibrated' if calibrated else ''})."
        f" Repeated-CV ROC AUC {_fmt(champion_cv['roc_auc'])}, accuracy {_fmt(champion_cv['accuracy'])},"
        f" Brier {_fmt(champion_cv['brier'], 4)}, expected cost {_fmt(champion_cv['expected_cost'])}"
        + (" (after the cross-fitted calibration below)." if calibrated else "."),
        "",
        f"Targets (ROC AUC >= {TARGET_AUC}, accuracy >= {TARGET_ACCURACY} on these 16 inputs):"
        f" **{'met' if met else 'not met'}**. For reference, the best published AutoML result on all 20"
        f" attributes (four more than here) is about {PUBLISHED_AUC} AUC.",
        "",
        _margins(champion_cv, int(data["protocol"]["outer_folds"])),
        "",
        f"Export parity (scikit-learn vs onnxruntime, the gate is {parity['tolerance']:g}): largest"
        f" difference {parity['max_abs_diff_data']:.1e} on the {protocol['rows']} training rows and"
        f" {parity['max_abs_diff_generated']:.1e} on {parity['generated_applicants']:,.0f} generated"
        " applicants covering every code and both bounds of every number.",
        "",
        "## Calibration",
        "",
        f"![reliability]({RELIABILITY_PNG})",
        "",
        f"Check: {calibration['method']}. Brier {calibration['brier_before']:.4f} -> "
        f"{calibration['brier_after']:.4f}, accuracy {calibration['accuracy_before']:.3f} ->"
        f" {calibration['accuracy_after']:.3f}. Rule: calibrate when the cross-fitted Brier score falls by"
        f" at least {protocol['calibration_min_gain']} (a material gain against a fold-to-fold spread of"
        f" about {champion.cv['brier']['std']:.3f}).",
        "",
        (
            "Decision: **calibrated**: the deployed model is wrapped in `PlattCalibrated`"
            " (`training/calibration.py`: Platt scaling of the logit, fit on 5-fold cross-validated"
            " probabilities, as `CalibratedClassifierCV(method='sigmoid', ensemble=False)` does)."
            if calibrated
            else "Decision: **not calibrated**: the gain is below the rule's threshold, so the simpler"
            " model is served."
        ),
        "",
        "## Chosen hyperparameters",
        "",
        "| candidate | deployed setting (searched on all rows) | most frequent settings across outer folds |",
        "| --- | --- | --- |",
        *(
            f"| {row.name} | `{_params(row.final_params)}` | {_param_spread(row.fold_params)} |"
            for row in rows
            if row.fold_params
        ),
        "",
        "## Caveats",
        "",
        "- The candidate families, encodings (log terms, the monthly payment) and search spaces were"
        " designed while looking at cross-validated results on these same 1000 rows. Nested CV keeps the"
        " hyperparameter search honest, but not those earlier choices, so the figures above are likely a"
        " little optimistic; with 1000 rows the fold-to-fold spread (the ± column) is the larger"
        " uncertainty.",
        "- Bad loans are oversampled to 30%: probabilities are on the sample's scale; the decision policy"
        " corrects them (see `reports/economics.md`).",
        "- Latency and fit times are single measurements on a shared 2-core machine; `bench/` has the"
        " service's benchmarks.",
        "",
    ]
    return "\n".join(lines)
