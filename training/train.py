"""The whole training run: EDA, nested-CV model search, champion, economics, ONNX export.

``credit train`` trains on ``data/credit.csv``, writes ``reports/`` and exports the
champion to ``function/model/`` (the model the function bundles). :func:`train` does the same
for any validated frame into any directory; the scheduled retrain (``training/retrain.py``)
calls it on new data. Deterministic for a given seed; progress lines go to ``progress``.

The model learns from :func:`training.fairness.model_inputs` (age left out; the choice and its
measured effect are in ``reports/fairness.md``). ``credit train`` then writes ``reports/fairness.*``
from the raw UCI file's protected attributes and the model card ``docs/model-card.md``.

The manifest records the champion's approval by age band from its out-of-fold probabilities (the
first repeat's, ``TrainResult.oof_probabilities``) under the manifest's policy
(:func:`training.fairness.age_band_approval`): the retrain's fairness gate compares a challenger's
out-of-fold ratio with that, not with the champion scored on its own training rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.schema import EXAMPLE_APPLICANT, FEATURE_NAMES, TARGET
from credit_api.scoring import Scorer
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from training import comparison, config, economics, eda, fairness
from training.calibration import champion_calibration
from training.data import ROOT, validate
from training.evaluate import calibration_check, summarise
from training.export import export, frame_sha256, parity, serialise, single_row_latency, to_onnx
from training.models import Candidate, build, candidates
from training.reference import favourable_reference
from training.tune import final_params, nested_cv

MODEL_DIR = ROOT / "function" / "model"
REPORTS_DIR = ROOT / "reports"
CALIBRATION_MIN_GAIN = 0.001
"""Calibrate only if cross-fitted Platt scaling lowers the champion's Brier score at least this much."""

PROTOCOLS: dict[bool, dict[str, int]] = {
    False: {"outer_splits": 5, "outer_repeats": 5, "inner_splits": 3, "final_inner_splits": 5},
    True: {"outer_splits": 3, "outer_repeats": 1, "inner_splits": 2, "final_inner_splits": 2},
}
"""Full search, and the quick one (``quick=True``) for tests and smoke runs."""
REPEATED_UP_TO_ROWS = 20_000
"""The full protocol repeats its 5 outer folds 5 times up to this many rows, and runs them once
above. Repeats average out the luck of one partition, which matters on the 1000 UCI rows (an
outer test fold of 200 loans); past 20,000 rows each test fold holds over 4,000 loans and the
repeats cost four fifths of the time for little precision: the retrain at 100,000 rows fits
Lambda's 900 s only without them (BENCHMARKS.md, "Retrain time and memory by rows")."""


def protocol_for(rows: int, quick: bool) -> dict[str, int]:
    """The cross-validation protocol for a frame of ``rows``: :data:`PROTOCOLS`, repeats bounded."""
    chosen = dict(PROTOCOLS[quick])
    if not quick and rows > REPEATED_UP_TO_ROWS:
        chosen["outer_repeats"] = 1
    return chosen


Progress = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training run produced; ``oof_probabilities`` are the champion's, one per row."""

    estimator: BaseEstimator
    champion: str
    cv_metrics: dict[str, float]
    oof_probabilities: np.ndarray
    oof_by_repeat: np.ndarray
    manifest: Manifest
    manifest_path: Path
    reports_dir: Path


def _clock(progress: Progress) -> Progress:
    started = time.perf_counter()
    return lambda message: progress(f"[{time.perf_counter() - started:6.1f}s] {message}")


def _deployed_row(
    candidate: Candidate,
    estimator: BaseEstimator,
    inputs: pd.DataFrame,
    cv: dict[str, dict[str, float]],
    fit_seconds: float,
    final_fit_seconds: float,
    params: dict[str, Any],
    fold_params: list[dict[str, Any]],
) -> comparison.Row:
    """Convert the deployed model to ONNX and measure what the table needs."""
    model = serialise(to_onnx(estimator))
    return comparison.Row(
        name=candidate.name,
        label=candidate.label,
        cv=cv,
        fit_seconds=fit_seconds,
        final_fit_seconds=final_fit_seconds,
        onnx_bytes=len(model),
        latency_ms=single_row_latency(model, EXAMPLE_APPLICANT),
        parity_max_diff=parity(estimator, Scorer.from_bytes(model), inputs),
        final_params=params,
        fold_params=fold_params,
    )


def train(
    frame: pd.DataFrame,
    *,
    out_dir: Path,
    seed: int = config.SEED,
    quick: bool = False,
    reports_dir: Path | None = None,
    n_jobs: int = 2,
    progress: Progress = print,
    max_search_rows: int | None = None,
) -> TrainResult:
    """Search, evaluate and export; ``model.onnx`` and ``manifest.json`` go to ``out_dir``.

    Reports go to ``reports_dir`` (default ``out_dir / "reports"``). ``quick`` runs a small search
    (3-fold outer CV, small grids, few trees) for tests; its numbers are not the project's.
    Native thread pools are held to one thread: the parallelism is across outer folds, and nested
    thread pools on a small machine only slow each other down. ``max_search_rows`` bounds each
    hyperparameter search to a stratified subsample (:func:`training.tune.bounded_search`), so
    the retrain's run time stops growing with the search as the data grows; None searches all rows.
    """
    with threadpool_limits(1):
        return _train(frame, out_dir, seed, quick, reports_dir, n_jobs, progress, max_search_rows)


def _train(
    frame: pd.DataFrame,
    out_dir: Path,
    seed: int,
    quick: bool,
    reports_dir: Path | None,
    n_jobs: int,
    progress: Progress,
    max_search_rows: int | None = None,
) -> TrainResult:
    started = time.perf_counter()
    log = _clock(progress)
    out_dir, reports_dir = Path(out_dir), Path(reports_dir or Path(out_dir) / "reports")
    validate(frame)
    frame = frame.reset_index(drop=True)
    modelled = fairness.model_inputs(frame)  # age left out of what the model learns from
    inputs, labels = modelled[list(FEATURE_NAMES)], frame[TARGET].to_numpy()
    protocol: dict[str, Any] = {
        **protocol_for(len(frame), quick),
        "seed": seed,
        "quick": quick,
        "n_jobs": n_jobs,
        "rows": len(frame),
        "default_rate": float(labels.mean()),
        "selection": "mean log-likelihood (log loss) on the inner folds",
        "calibration_min_gain": CALIBRATION_MIN_GAIN,
        "load_average": os.getloadavg()[0],
        "max_search_rows": max_search_rows,
    }
    protocol["outer_folds"] = protocol["outer_splits"] * protocol["outer_repeats"]
    log(f"training on {len(frame)} rows, seed {seed}{' (quick)' if quick else ''}")

    eda.write(frame, reports_dir, data_sha256=frame_sha256(frame))
    log(f"EDA written to {reports_dir / eda.REPORT}")

    catalogue = candidates(quick=quick)
    log(
        f"nested CV: {protocol['outer_folds']} outer folds x {len(catalogue)} candidates,"
        f" {protocol['inner_splits']}-fold inner search, {n_jobs} workers"
    )
    cv_started = time.perf_counter()
    nested = nested_cv(
        modelled,
        catalogue,
        seed=seed,
        outer_splits=protocol["outer_splits"],
        outer_repeats=protocol["outer_repeats"],
        inner_splits=protocol["inner_splits"],
        n_jobs=n_jobs,
        progress=log,
        max_search_rows=max_search_rows,
    )
    cv_seconds = time.perf_counter() - cv_started
    summaries = {
        name: summarise(labels, result.probabilities, result.folds) for name, result in nested.items()
    }
    for name, summary in summaries.items():
        log(
            f"  {name:20s} AUC {summary['roc_auc']['mean']:.4f} ± {summary['roc_auc']['std']:.3f}"
            f"  accuracy {summary['accuracy']['mean']:.4f}  Brier {summary['brier']['mean']:.4f}"
            f"  cost {summary['expected_cost']['mean']:.3f}"
        )

    log("searching each candidate's deployed setting on all rows")
    deployed = final_params(
        modelled,
        catalogue,
        seed=seed,
        inner_splits=protocol["final_inner_splits"],
        max_search_rows=max_search_rows,
    )
    estimators: dict[str, BaseEstimator] = {}
    rows = []
    for name, candidate in catalogue.items():
        estimator = build(candidate, deployed[name], seed, catalogue)
        fit_started = time.perf_counter()
        estimator.fit(inputs, labels)
        estimators[name] = estimator
        rows.append(
            _deployed_row(
                candidate,
                estimator,
                inputs,
                summaries[name],
                float(np.mean(nested[name].fit_seconds)),
                time.perf_counter() - fit_started,
                deployed[name],
                nested[name].params,
            )
        )
        row = rows[-1]
        log(f"  {name:20s} fitted, ONNX {row.onnx_bytes / 1024:,.0f} KB, parity {row.parity_max_diff:.1e}")

    champion = comparison.choose_champion(rows)
    result = nested[champion.name]
    calibration = calibration_check(labels, result.probabilities, result.folds)
    calibrated = calibration["brier_before"] - calibration["brier_after"] >= CALIBRATION_MIN_GAIN
    estimator = estimators[champion.name]
    oof = result.probabilities
    champion_cv = champion.cv
    if calibrated:
        uncalibrated = build(catalogue[champion.name], deployed[champion.name], seed, catalogue)
        estimator = champion_calibration(uncalibrated, seed).fit(inputs, labels)
        oof = calibration["probabilities"]
        champion_cv = summarise(labels, oof, result.folds)
    log(
        f"champion: {champion.name} (AUC {champion.cv['roc_auc']['mean']:.4f});"
        f" Brier {calibration['brier_before']:.4f} -> {calibration['brier_after']:.4f} with Platt:"
        f" {'calibrated' if calibrated else 'not calibrated'}"
    )

    outcome = economics.evaluate(oof[0], frame, config.DEFAULT_POLICY, seed=seed)
    economics.write_report(outcome, reports_dir, model=champion.label)
    economics.write_predictions(oof[0], frame, reports_dir)
    log(f"economics written to {reports_dir / economics.REPORT_FILE}")

    metrics = {name: value["mean"] for name, value in champion_cv.items()}
    metrics |= {f"{name}_std": value["std"] for name, value in champion_cv.items()}
    manifest = export(
        estimator,
        frame,
        out_dir,
        algorithm=("calibrated " if calibrated else "") + f"{champion.name}: {champion.label}",
        metrics=metrics,
        policy=config.DEFAULT_POLICY,
        score_scale=config.DEFAULT_SCALE,
        reason_reference=favourable_reference(frame),
        oof_probabilities=oof,
        seed=seed,
        age_approval=fairness.age_band_approval(oof[0], frame, config.DEFAULT_POLICY),
        extra={
            "cv": f"nested, stratified {protocol['outer_splits']}-fold x {protocol['outer_repeats']} outer",
            "params": comparison.plain_params(deployed[champion.name]),
            "calibrated": calibrated,
            "quick": quick,
            "seed": seed,
        },
    )
    parity_found = manifest.extra["parity"]
    log(
        f"exported {manifest.model_version} to {out_dir}: parity"
        f" {parity_found['max_abs_diff_data']:.1e} (data), {parity_found['max_abs_diff_generated']:.1e}"
        f" ({parity_found['generated_applicants']:,.0f} generated)"
    )
    comparison.write_report(
        reports_dir,
        rows=rows,
        champion=champion,
        champion_cv=champion_cv,
        labels=labels,
        oof={name: r.probabilities for name, r in nested.items()},
        calibration=calibration,
        calibrated=calibrated,
        protocol=protocol,
        runtime_seconds={"nested_cv": cv_seconds, "total": time.perf_counter() - started},
        parity=parity_found,
        manifest_version=manifest.model_version,
    )
    log(f"comparison written to {reports_dir / comparison.REPORT}; done")
    return TrainResult(
        estimator=estimator,
        champion=champion.name,
        cv_metrics=metrics,
        oof_probabilities=np.asarray(oof[0]),
        oof_by_repeat=np.asarray(oof),
        manifest=manifest,
        manifest_path=out_dir / MANIFEST_FILE,
        reports_dir=reports_dir,
    )
