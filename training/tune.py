"""Nested cross-validation: tune on inner folds, report on outer folds the search never saw.

Outer loop: repeated stratified K-fold (default 5 x 5). In each outer fold every candidate runs
its hyperparameter search (``training.models``) on the outer-training rows only, the chosen
configuration is refit on those rows, and only then are the outer-test rows predicted. The
numbers reported are therefore never the numbers the search picked by. An ensemble is the average
of its tuned members' predictions in the same fold, which is exactly what a soft
``VotingClassifier`` of those members predicts.

The encoders are stateless (``training.features``), so the frame is encoded once and the folds
index rows of the encoded arrays. Every random choice derives from one seed and the fold's
position, so results do not depend on the number of worker processes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from credit_api.schema import FEATURE_NAMES, TARGET
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from training.features import ENCODERS
from training.models import Candidate, head

Progress = Callable[[str], None]
STAGE_STEP = 10
"""Boosting: every 10th number of trees is a candidate value of ``n_estimators``."""


@dataclass
class CandidateCV:
    """One candidate's out-of-fold results: per repeat a full vector of probabilities."""

    name: str
    probabilities: np.ndarray
    folds: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    """(outer fold index, repeat, test rows), in fold order."""
    params: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    search_seconds: list[float] = field(default_factory=list)


@dataclass
class _FoldOutcome:
    fold: int
    repeat: int
    test: np.ndarray
    probabilities: dict[str, np.ndarray]
    params: dict[str, dict[str, Any]]
    fit_seconds: dict[str, float]
    search_seconds: dict[str, float]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties averaged): the same number as scikit-learn's, faster."""
    labels = np.asarray(labels)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both classes")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean log-likelihood of the labels (higher is better): a proper scoring rule."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(labels)
    return float(np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


selection_score = log_score
"""What the inner search maximises. A proper scoring rule rather than AUC: it picks settings whose
probabilities are right, not only well ordered, which the cost-based policy needs. (Tuned on AUC,
the logistic regression picked the strongest regularisation offered, squeezing every probability
towards 30%, which costs accuracy for a negligible gain in AUC.)"""


def encode(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The frame through each (stateless) encoder, once."""
    inputs = frame[list(FEATURE_NAMES)]
    return {kind: factory().fit_transform(inputs) for kind, factory in ENCODERS.items()}


def _grid(candidate: Candidate) -> list[dict[str, Any]]:
    keys = sorted(candidate.grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(candidate.grid[k] for k in keys))
    ]


def _timed_fit(estimator: BaseEstimator, x: np.ndarray, y: np.ndarray) -> tuple[BaseEstimator, float]:
    start = time.perf_counter()
    estimator.fit(x, y)
    return estimator, time.perf_counter() - start


def search(
    candidate: Candidate, x: np.ndarray, y: np.ndarray, *, seed: int, inner_splits: int
) -> tuple[dict[str, Any], BaseEstimator, float]:
    """Choose ``candidate``'s params on these rows only; return them, the head refit on all rows, fit time.

    Ties go to the earlier grid point (grids list the simpler settings first).
    """
    grid = _grid(candidate)
    if candidate.search == "oob":
        best: tuple[float, dict[str, Any], BaseEstimator, float] | None = None
        for params in grid:
            model, seconds = _timed_fit(head(candidate, {**params, "oob_score": True}, seed), x, y)
            score = selection_score(y, model.oob_decision_function_[:, 1])
            if best is None or score > best[0]:
                best = (score, params, model, seconds)
        if best is None:
            raise ValueError("no candidate parameters to search")
        return best[1], best[2], best[3]

    inner = list(StratifiedKFold(inner_splits, shuffle=True, random_state=seed).split(x, y))
    scores: dict[int, list[float]] = {}
    settings: list[dict[str, Any]] = []
    for params in grid:
        if candidate.search == "staged":
            stages = list(range(STAGE_STEP, candidate.max_trees + 1, STAGE_STEP))
            per_fold = np.zeros((len(inner), len(stages)))
            for i, (train, test) in enumerate(inner):
                model = head(candidate, {**params, candidate.trees_param: candidate.max_trees}, seed).fit(
                    x[train], y[train]
                )
                staged = list(model.staged_predict_proba(x[test]))
                per_fold[i] = [selection_score(y[test], staged[n - 1][:, 1]) for n in stages]
            for n, values in zip(stages, per_fold.T, strict=True):
                scores[len(settings)] = list(values)
                settings.append({**params, candidate.trees_param: n})
        else:
            fold_scores = []
            for train, test in inner:
                model = head(candidate, params, seed).fit(x[train], y[train])
                fold_scores.append(selection_score(y[test], model.predict_proba(x[test])[:, 1]))
            scores[len(settings)] = fold_scores
            settings.append(params)
    chosen = max(range(len(settings)), key=lambda i: (float(np.mean(scores[i])), -i))
    model, seconds = _timed_fit(head(candidate, settings[chosen], seed), x, y)
    return settings[chosen], model, seconds


def search_rows(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Positions of at most ``max_rows`` rows of ``y``, stratified: the rows a bounded search tunes on.

    The search's cost grows with the rows while the chosen settings barely change past a few
    thousand, so above the budget the settings are chosen on a subsample and refit on every row.
    Each class keeps its share (rounded), so the log-likelihood the search maximises is not skewed.
    """
    if max_rows is None or len(y) <= max_rows:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        share = max(1, round(max_rows * len(members) / len(y)))
        picked.append(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def bounded_search(
    candidate: Candidate, x: np.ndarray, y: np.ndarray, *, seed: int, inner_splits: int, max_rows: int | None
) -> tuple[dict[str, Any], BaseEstimator, float]:
    """:func:`search` on at most ``max_rows`` rows (:func:`search_rows`); the choice refit on all rows."""
    rows = search_rows(y, max_rows, seed)
    if len(rows) == len(y):
        return search(candidate, x, y, seed=seed, inner_splits=inner_splits)
    params, _, _ = search(candidate, x[rows], y[rows], seed=seed, inner_splits=inner_splits)
    model, seconds = _timed_fit(head(candidate, params, seed), x, y)
    return params, model, seconds


def fold_seed(seed: int, index: int) -> int:
    """The seed of outer fold ``index``: its inner splits and its models' randomness."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _run_fold(
    index: int,
    repeat: int,
    train: np.ndarray,
    test: np.ndarray,
    encoded: dict[str, np.ndarray],
    y: np.ndarray,
    base: list[Candidate],
    seed: int,
    inner_splits: int,
    max_search_rows: int | None = None,
) -> _FoldOutcome:
    outcome = _FoldOutcome(index, repeat, test, {}, {}, {}, {})
    seed_here = fold_seed(seed, index)
    with threadpool_limits(1):
        for candidate in base:
            x = encoded[candidate.encoder]
            start = time.perf_counter()
            params, model, seconds = bounded_search(
                candidate,
                x[train],
                y[train],
                seed=seed_here,
                inner_splits=inner_splits,
                max_rows=max_search_rows,
            )
            outcome.search_seconds[candidate.name] = time.perf_counter() - start
            outcome.params[candidate.name] = params
            outcome.fit_seconds[candidate.name] = seconds
            outcome.probabilities[candidate.name] = model.predict_proba(x[test])[:, 1]
    return outcome


def nested_cv(
    frame: pd.DataFrame,
    catalogue: dict[str, Candidate],
    *,
    seed: int,
    outer_splits: int = 5,
    outer_repeats: int = 5,
    inner_splits: int = 3,
    n_jobs: int = 2,
    progress: Progress = print,
    max_search_rows: int | None = None,
) -> dict[str, CandidateCV]:
    """Out-of-fold probabilities of every candidate under nested CV (see the module docstring)."""
    y = frame[TARGET].to_numpy()
    encoded = encode(frame)
    base = [c for c in catalogue.values() if not c.ensemble]
    outer = RepeatedStratifiedKFold(n_splits=outer_splits, n_repeats=outer_repeats, random_state=seed)
    splits = list(outer.split(encoded["tree"], y))
    results = {name: CandidateCV(name, np.full((outer_repeats, len(y)), np.nan)) for name in catalogue}
    jobs = (
        delayed(_run_fold)(
            i, i // outer_splits, train, test, encoded, y, base, seed, inner_splits, max_search_rows
        )
        for i, (train, test) in enumerate(splits)
    )
    outcomes: Iterator[_FoldOutcome] = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    started = time.perf_counter()
    for done, outcome in enumerate(outcomes, start=1):
        for candidate in catalogue.values():
            _record(results[candidate.name], candidate, outcome)
        summary = "  ".join(
            f"{name}={auc(y[outcome.test], results[name].probabilities[outcome.repeat, outcome.test]):.3f}"
            for name in catalogue
        )
        progress(
            f"  outer fold {done:2d}/{len(splits)} ({time.perf_counter() - started:5.1f}s)  AUC {summary}"
        )
    for result in results.values():
        order = np.argsort([index for index, _, _ in result.folds], kind="stable")
        for name in ("folds", "params", "fit_seconds", "search_seconds"):
            setattr(result, name, [getattr(result, name)[i] for i in order])
    return results


def _record(result: CandidateCV, candidate: Candidate, outcome: _FoldOutcome) -> None:
    if candidate.ensemble:
        members = candidate.members
        probabilities = np.mean([outcome.probabilities[m] for m in members], axis=0)
        params: dict[str, Any] = {m: outcome.params[m] for m in members}
        fit = sum(outcome.fit_seconds[m] for m in members)
        searched = sum(outcome.search_seconds[m] for m in members)
    else:
        probabilities = outcome.probabilities[candidate.name]
        params = outcome.params[candidate.name]
        fit = outcome.fit_seconds[candidate.name]
        searched = outcome.search_seconds[candidate.name]
    result.probabilities[outcome.repeat, outcome.test] = probabilities
    result.folds.append((outcome.fold, outcome.repeat, outcome.test))
    result.params.append(params)
    result.fit_seconds.append(fit)
    result.search_seconds.append(searched)


def final_params(
    frame: pd.DataFrame,
    catalogue: dict[str, Candidate],
    *,
    seed: int,
    inner_splits: int = 5,
    max_search_rows: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Each candidate's params searched on all rows: what the deployed model is built with."""
    y = frame[TARGET].to_numpy()
    encoded = encode(frame)
    chosen: dict[str, dict[str, Any]] = {}
    with threadpool_limits(1):
        for candidate in catalogue.values():
            if not candidate.ensemble:
                x = encoded[candidate.encoder]
                rows = search_rows(y, max_search_rows, seed)
                chosen[candidate.name], _, _ = search(
                    candidate, x[rows], y[rows], seed=seed, inner_splits=inner_splits
                )
    for candidate in catalogue.values():
        if candidate.ensemble:
            chosen[candidate.name] = {member: chosen[member] for member in candidate.members}
    return chosen
