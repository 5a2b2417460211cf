"""Fairness at training: the served decisions by age band, sex and marital status, foreign-worker status.

The decisions measured are the function's own: out-of-fold probabilities of the champion's
pipeline, with Regulation B's age rule (``credit_api.age_rule``), through ``credit_api.policy``'s
``decide_many``. The protected attributes come from the raw UCI file (``training.data.RAW_CSV``,
same row order as ``data/credit.csv``); sex, marital status and foreign-worker status are NOT model
inputs, and are read here only to measure.

Per group: approval rate, the share of good applicants approved (equal opportunity) and the default
rate among the approved, on the sample as it is (30% defaults, unweighted, as fair-lending tests
count applicants). Per attribute, each measure's min/max ratio across groups (the four-fifths rule
of thumb for approval rates: at least 0.80). Point estimates by fairlearn's ``MetricFrame``;
95% percentile bootstrap intervals over applicants, every measure and ratio from the same resamples
(:func:`bootstrap`, vectorised: a resample is a multinomial count per applicant).

:func:`compare_treatments` evaluates ways to close the age gap, each on the same repeated
stratified folds with the champion's deployed hyperparameters (not re-searched per fold, so cheaper
than the nested search and the same for every treatment): age as it is, left out, floored at 25,
banded, floored at scoring only, monotone (non-increasing in age for everyone), and reviews instead
of declines near the cut-off for the young. Each gets AUC, accuracy, the economics of
``training.economics`` (net savings a year, defaulters not booked) and the age-band approval ratio.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from credit_api import age_rule
from credit_api.manifest import AgeApproval
from credit_api.policy import Policy, break_even, decide_many
from credit_api.schema import BY_NAME, EXAMPLE_APPLICANT, FEATURE_NAMES, TARGET
from credit_api.scoring import Scorer
from fairlearn.metrics import MetricFrame, count, selection_rate, true_positive_rate
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import RepeatedStratifiedKFold
from threadpoolctl import threadpool_limits

from training import config, economics
from training.data import RAW_CSV
from training.evaluate import summarise

REPORT = "fairness.md"
RESULT = "fairness.json"
FOUR_FIFTHS = 0.80
"""The four-fifths rule of thumb (EEOC Uniform Guidelines, 29 CFR 1607.4(D)) for approval-rate ratios."""
AUC_BUDGET = 0.005
"""The most AUC a treatment of age may cost (issue #11)."""

AGE_BANDS: tuple[tuple[str, int], ...] = (("under 25", 18), ("25-39", 25), ("40-61", 40), ("62+", 62))
"""(label, youngest age) per band; each band runs to the next band's youngest age minus one."""
SEX_MARITAL: dict[str, str] = {
    "male : divorced/separated": "male, divorced or separated",
    "female : divorced/separated/married": "female, divorced, separated or married",
    "male : single": "male, single",
    "male : married/widowed": "male, married or widowed",
    "female : single": "female, single",
}
"""The raw file's words for ``personal_status_and_sex`` (UCI attribute 9), as the report names them."""
FOREIGN_WORKER: dict[str, str] = {"yes": "foreign worker", "no": "not a foreign worker"}
ATTRIBUTES: dict[str, str] = {
    "age_band": "Age band",
    "sex_marital": "Sex and marital status",
    "foreign_worker": "Foreign-worker status",
}
MEASURES: dict[str, str] = {
    "approval_rate": "approval rate",
    "good_approved": "good applicants approved",
    "default_rate_approved": "default rate among the approved",
}
MIN_BAND_ROWS = 20
"""Age bands with fewer rows than this are left out of the age-band approval ratio: a handful of
applicants would swing it (the smallest band of ``data/credit.csv``, 62+, has 38)."""
YOUNG_REVIEW_WIDTH = 2.0
"""Reviews for the young: a decline under 25 within this many review bands above the cut-off is referred."""


def age_bands(ages: Sequence[int] | np.ndarray) -> np.ndarray:
    """The band label of each age."""
    values = np.asarray(ages).reshape(-1)
    starts = np.array([start for _, start in AGE_BANDS])
    index = np.searchsorted(starts, values, side="right") - 1
    if np.any(index < 0):
        raise ValueError(f"ages below {starts[0]}")
    return np.array([label for label, _ in AGE_BANDS], dtype=object)[index]


def protected_groups(frame: pd.DataFrame, raw_csv: Path = RAW_CSV) -> pd.DataFrame:
    """Age band, sex and marital status, foreign-worker status per row of ``frame``.

    The raw file must be the rows of ``frame`` in the same order: its age, amount and term are
    checked row by row, so a reordered or different file is refused rather than mismatched.
    """
    raw = pd.read_csv(raw_csv, dtype=str, keep_default_na=False)
    if len(raw) != len(frame):
        raise ValueError(f"{raw_csv} has {len(raw)} rows, the frame {len(frame)}")
    for raw_name, name in (
        ("age_in_years", "age"),
        ("credit_amount", "amount"),
        ("duration_in_month", "months_loan_duration"),
    ):
        if not np.array_equal(raw[raw_name].astype(np.int64).to_numpy(), frame[name].to_numpy(np.int64)):
            raise ValueError(f"{raw_csv}: {raw_name} differs from the frame's {name}; rows not aligned")
    groups = pd.DataFrame(
        {
            "age_band": age_bands(frame["age"].to_numpy()),
            "sex_marital": raw["personal_status_and_sex"].map(SEX_MARITAL),
            "foreign_worker": raw["foreign_worker"].map(FOREIGN_WORKER),
        }
    )
    if groups.isna().any().any():
        raise ValueError(f"{raw_csv}: unmapped protected attribute values")
    return groups


def min_max_ratio(rates: Sequence[float] | np.ndarray) -> float:
    """Lowest over highest rate (groups with no rate, NaN, left out); NaN if the highest is 0."""
    values = np.asarray(rates, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0 or values.max() == 0:
        return float("nan")
    return float(values.min() / values.max())


def age_ratio(rates: Mapping[str, float]) -> float | None:
    """Lowest over highest approval rate; None with fewer than two bands or no approval at all."""
    if len(rates) < 2:
        return None
    ratio = min_max_ratio(list(rates.values()))
    return None if math.isnan(ratio) else ratio


def age_band_approval(probabilities: np.ndarray, frame: pd.DataFrame, policy: Policy) -> AgeApproval:
    """Approval rate per age band (bands of at least ``MIN_BAND_ROWS`` rows) through ``policy``.

    The one measure of the retrain's fairness gate, and what training records in the manifest from
    the champion's out-of-fold probabilities, so both sides of the gate are computed here.
    """
    approved = approved_by_policy(np.asarray(probabilities), frame, policy) == "approve"
    bands = age_bands(frame["age"].to_numpy())
    rows: dict[str, int] = {}
    rates: dict[str, float] = {}
    for label, _ in AGE_BANDS:
        in_band = bands == label
        rows[label] = int(in_band.sum())
        if rows[label] >= MIN_BAND_ROWS:
            rates[label] = float(approved[in_band].mean())
    return AgeApproval(rates=rates, rows=rows, ratio=age_ratio(rates), min_band_rows=MIN_BAND_ROWS)


def _default_rate_approved(good: np.ndarray, approved: np.ndarray) -> float:
    chosen = np.asarray(approved, dtype=bool)
    return float(1 - np.asarray(good)[chosen].mean()) if chosen.any() else float("nan")


def group_table(good: np.ndarray, approved: np.ndarray, groups: Sequence[str]) -> MetricFrame:
    """fairlearn's MetricFrame of the three measures (and counts) per group."""
    return MetricFrame(
        metrics={
            "n": count,
            "approval_rate": selection_rate,
            "good_approved": true_positive_rate,
            "default_rate_approved": _default_rate_approved,
        },
        y_true=np.asarray(good, dtype=int),
        y_pred=np.asarray(approved, dtype=int),
        sensitive_features=pd.Series(np.asarray(groups), name="group"),
    )


def _parts(good: np.ndarray, approved: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each measure as (numerator, denominator) per row: measure = sum(num) / sum(den) in a group."""
    good_ = np.asarray(good, dtype=np.float64)
    approved_ = np.asarray(approved, dtype=np.float64)
    return {
        "approval_rate": (approved_, np.ones_like(approved_)),
        "good_approved": (approved_ * good_, good_),
        "default_rate_approved": (approved_ * (1 - good_), approved_),
    }


def percentile_interval(
    values: np.ndarray, confidence: float = config.CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval of ``values`` along axis 0, NaNs ignored; NaN where none is left."""
    array = np.asarray(values, dtype=np.float64)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.full(array.shape[1:], np.nan), np.full(array.shape[1:], np.nan)
    present = ~np.isnan(array).all(axis=0) if array.shape[0] else np.zeros(array.shape[1:], dtype=bool)
    if np.any(present):
        found = np.nanpercentile(array[:, present], [tail, 100 - tail], axis=0)
        lo[present], hi[present] = found[0], found[1]
    return lo, hi


def resample_counts(n: int, *, seed: int, resamples: int) -> np.ndarray:
    """``(resamples, n)``: how often each applicant is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def bootstrap(
    good: np.ndarray,
    approved: np.ndarray,
    groups: Sequence[str],
    counts: np.ndarray,
    confidence: float = config.CONFIDENCE,
) -> dict[str, Any]:
    """Intervals of each measure per group and of its min/max ratio, from resample ``counts``.

    A group with no denominator in a resample (no applicant drawn, or none approved) has no rate
    there and is left out of that resample's ratio.
    """
    labels = np.asarray(groups)
    names = sorted(set(labels.tolist()))
    member = np.stack([labels == g for g in names], axis=1).astype(np.float64)  # (n, groups)
    out: dict[str, Any] = {"groups": {}, "ratios": {}}
    with np.errstate(invalid="ignore", divide="ignore"):
        for measure, (num, den) in _parts(good, approved).items():
            rates = (counts @ (member * num[:, None])) / (counts @ (member * den[:, None]))
            lo, hi = percentile_interval(rates, confidence)
            out["groups"][measure] = {g: [float(lo[i]), float(hi[i])] for i, g in enumerate(names)}
            valid = ~np.isnan(rates)
            highest = np.where(valid, rates, -np.inf).max(axis=1)
            lowest = np.where(valid, rates, np.inf).min(axis=1)
            ratio = np.where(highest > 0, lowest / np.where(highest > 0, highest, 1), np.nan)
            low, high = percentile_interval(ratio[:, None], confidence)
            out["ratios"][measure] = [float(low[0]), float(high[0])]
    return out


def approved_by_policy(probabilities: np.ndarray, frame: pd.DataFrame, policy: Policy) -> np.ndarray:
    """The served decision for each row (``credit_api.policy.decide_many``), as strings."""
    decisions = decide_many(
        probabilities, frame["amount"].to_numpy(), frame["months_loan_duration"].to_numpy(), policy
    )
    return np.array([d.decision for d in decisions])


def assess(
    probabilities: np.ndarray,
    frame: pd.DataFrame,
    groups: pd.DataFrame,
    policy: Policy,
    *,
    seed: int,
    resamples: int = config.BOOTSTRAP_RESAMPLES,
    confidence: float = config.CONFIDENCE,
    decisions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every attribute's table and ratios for one set of probabilities (raw, sample scale).

    ``decisions`` overrides the policy's (a treatment that changes decisions, not probabilities).
    """
    verdict = approved_by_policy(probabilities, frame, policy) if decisions is None else decisions
    approved = verdict == "approve"
    good = frame[TARGET].to_numpy() == 0
    counts = resample_counts(len(frame), seed=seed, resamples=resamples)
    result: dict[str, Any] = {}
    for attribute, label in ATTRIBUTES.items():
        table = group_table(good, approved, groups[attribute])
        intervals = bootstrap(good, approved, groups[attribute], counts, confidence)
        by_group = table.by_group
        rows = []
        for group in _ordered(attribute, by_group.index):
            in_group = groups[attribute].to_numpy() == group
            row: dict[str, Any] = {"group": group, "n": int(by_group.loc[group, "n"])}
            for measure in MEASURES:
                row[measure] = _float(by_group.loc[group, measure])
                row[f"{measure}_ci"] = intervals["groups"][measure][group]
            row["review_rate"] = float(np.mean(verdict[in_group] == "review"))
            row["decline_rate"] = float(np.mean(verdict[in_group] == "decline"))
            rows.append(row)
        ratios = {
            measure: {
                "value": min_max_ratio([r[measure] for r in rows]),
                "fairlearn": _float(table.ratio(method="between_groups")[measure]),
                "ci": intervals["ratios"][measure],
            }
            for measure in MEASURES
        }
        result[attribute] = {"label": label, "groups": rows, "ratios": ratios}
    return result


def _ordered(attribute: str, present: Any) -> list[str]:
    order = {
        "age_band": [label for label, _ in AGE_BANDS],
        "sex_marital": list(SEX_MARITAL.values()),
        "foreign_worker": list(FOREIGN_WORKER.values()),
    }[attribute]
    found = set(present)
    return [g for g in order if g in found]


def _float(value: Any) -> float:
    return float(value) if value == value else float("nan")


# Treatments of age -------------------------------------------------------------------------------

AgeMap = Callable[[np.ndarray], np.ndarray]


def _as_is(ages: np.ndarray) -> np.ndarray:
    return ages


def _left_out(ages: np.ndarray) -> np.ndarray:
    return np.full_like(ages, int(BY_NAME["age"].default))


def _floor_25(ages: np.ndarray) -> np.ndarray:
    return np.maximum(ages, 25)


def _banded(ages: np.ndarray) -> np.ndarray:
    starts = np.array([start for _, start in AGE_BANDS])
    return starts[np.searchsorted(starts, ages, side="right") - 1]


@dataclass(frozen=True)
class Treatment:
    """One way of treating age: how the model sees it in training and scoring, and the decisions.

    ``fit`` names the age map the model is trained with (models are fitted once per fit); ``score``
    is applied at scoring; ``rule_from`` the age from which the rule's minimum over younger ages
    applies (62: Regulation B's rule, 19: every applicant, i.e. monotone; None: no rule).
    """

    name: str
    label: str
    fit: str = "as_is"
    score: str = "as_is"
    rule_from: int | None = age_rule.AGE_PROTECTED_FROM
    young_reviews: bool = False


AGE_MAPS: dict[str, AgeMap] = {
    "as_is": _as_is,
    "left_out": _left_out,
    "floor_25": _floor_25,
    "banded": _banded,
}
SERVED = "left_out"
"""The treatment the champion is trained with (see :func:`model_inputs` and the report's choice)."""
TREATMENTS: tuple[Treatment, ...] = (
    Treatment("no_rule", "age as is, without the age rule", rule_from=None),
    Treatment("as_is", "age as is, with the age rule (served before this change)"),
    Treatment("left_out", "age left out (retrained without it)", fit="left_out", score="left_out"),
    Treatment("floor_25", "age floored at 25 (retrained)", fit="floor_25", score="floor_25"),
    Treatment("banded", "age in the four bands (retrained)", fit="banded", score="banded"),
    Treatment("floor_25_scoring", "age floored at 25 at scoring only (same model)", score="floor_25"),
    Treatment("monotone", "age monotone: never worse older, for everyone", rule_from=age_rule.YOUNGEST + 1),
    Treatment("young_reviews", "reviews instead of declines near the cut-off under 25", young_reviews=True),
)


def rule_predict(
    estimator: BaseEstimator, rows: pd.DataFrame, age_map: AgeMap, rule_from: int | None
) -> np.ndarray:
    """P(default) of ``rows`` with ``age_map`` applied, lowered by the age rule from ``rule_from``.

    The training side of ``credit_api.age_rule``: the same variants and minimum, one predict call.
    """
    features = rows[list(FEATURE_NAMES)].reset_index(drop=True)
    if rule_from is None:
        owner, ages = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    else:
        owner, ages = age_rule.variants(features["age"].to_numpy(), protected_from=rule_from)
    expanded = pd.concat([features, features.iloc[owner].assign(age=ages)], ignore_index=True)
    expanded["age"] = age_map(expanded["age"].to_numpy(np.int64))
    return age_rule.collapse(estimator.predict_proba(expanded)[:, 1], owner, len(features))


def _with_age(frame: pd.DataFrame, age_map: AgeMap) -> pd.DataFrame:
    return frame.assign(age=age_map(frame["age"].to_numpy(np.int64)))


def _fold(
    estimator: BaseEstimator,
    frame: pd.DataFrame,
    train: np.ndarray,
    test: np.ndarray,
    treatments: Sequence[Treatment],
) -> dict[str, np.ndarray]:
    labels = frame[TARGET].to_numpy()
    fitted: dict[str, BaseEstimator] = {}
    found = {}
    for treatment in treatments:
        if treatment.fit not in fitted:
            rows = _with_age(frame.iloc[train], AGE_MAPS[treatment.fit])[list(FEATURE_NAMES)]
            fitted[treatment.fit] = clone(estimator).fit(rows, labels[train])
        found[treatment.name] = rule_predict(
            fitted[treatment.fit], frame.iloc[test], AGE_MAPS[treatment.score], treatment.rule_from
        )
    return found


def out_of_fold(
    estimator: BaseEstimator,
    frame: pd.DataFrame,
    treatments: Sequence[Treatment] = TREATMENTS,
    *,
    seed: int,
    splits: int,
    repeats: int,
    n_jobs: int = 2,
) -> tuple[dict[str, np.ndarray], list[tuple[int, int, np.ndarray]]]:
    """({treatment: (repeats, rows) out-of-fold probabilities}, folds as ``training.evaluate`` takes them)."""
    labels = frame[TARGET].to_numpy()
    outer = RepeatedStratifiedKFold(n_splits=splits, n_repeats=repeats, random_state=seed)
    folds = list(outer.split(frame, labels))
    found = Parallel(n_jobs=n_jobs)(
        delayed(_fold)(estimator, frame, train, test, treatments) for train, test in folds
    )
    oof = {t.name: np.full((repeats, len(frame)), np.nan) for t in treatments}
    for index, ((_, test), per_treatment) in enumerate(zip(folds, found, strict=True)):
        for name, probabilities in per_treatment.items():
            oof[name][index // splits, test] = probabilities
    return oof, [(i, i // splits, test) for i, (_, test) in enumerate(folds)]


def young_reviews(probabilities: np.ndarray, frame: pd.DataFrame, policy: Policy) -> np.ndarray:
    """The policy's decisions, with declines under 25 near the cut-off referred for review instead."""
    verdict = approved_by_policy(probabilities, frame, policy)
    decisions = decide_many(
        probabilities, frame["amount"].to_numpy(), frame["months_loan_duration"].to_numpy(), policy
    )
    corrected = np.array([d.probability_of_default for d in decisions])
    cut = break_even(frame["months_loan_duration"].to_numpy(), policy)
    near = corrected <= cut * (1 + YOUNG_REVIEW_WIDTH * policy.review_band)
    young = frame["age"].to_numpy() < AGE_BANDS[1][1]
    return np.where((verdict == "decline") & near & young, "review", verdict)


def compare_treatments(
    oof: Mapping[str, np.ndarray],
    folds: Sequence[tuple[int, int, np.ndarray]],
    frame: pd.DataFrame,
    groups: pd.DataFrame,
    policy: Policy,
    *,
    seed: int,
    resamples: int,
) -> list[dict[str, Any]]:
    """One row per treatment: AUC, accuracy, economics, age-band approval ratio (with interval)."""
    labels = frame[TARGET].to_numpy()
    base = summarise(labels, oof["as_is"], folds)["roc_auc"]["mean"]
    rows = []
    for treatment in (t for t in TREATMENTS if t.name in oof):
        probabilities = oof[treatment.name]
        metrics = summarise(labels, probabilities, folds)
        money = economics.evaluate(probabilities[0], frame, policy, seed=seed, resamples=resamples)
        by_repeat = []
        for repeat in range(probabilities.shape[0]):
            decisions = (
                young_reviews(probabilities[repeat], frame, policy) if treatment.young_reviews else None
            )
            by_repeat.append(
                assess(
                    probabilities[repeat],
                    frame,
                    groups,
                    policy,
                    seed=seed,
                    resamples=0 if repeat else resamples,
                    decisions=decisions,
                )
            )
        ratio = by_repeat[0]["age_band"]["ratios"]["approval_rate"]
        spread = [r["age_band"]["ratios"]["approval_rate"]["value"] for r in by_repeat]
        under = next(g for g in by_repeat[0]["age_band"]["groups"] if g["group"] == AGE_BANDS[0][0])
        row = {
            "name": treatment.name,
            "label": treatment.label,
            "roc_auc": metrics["roc_auc"]["mean"],
            "roc_auc_std": metrics["roc_auc"]["std"],
            "auc_cost": base - metrics["roc_auc"]["mean"],
            "accuracy": metrics["accuracy"]["mean"],
            "net_savings_annual": money["scaled"]["net_savings_annual"],
            "net_savings_annual_ci": money["scaled"].get("net_savings_annual_ci"),
            "defaulters_not_booked": money["point"]["share_of_defaulters_declined"],
            "age_approval_ratio": ratio["value"],
            "age_approval_ratio_ci": ratio["ci"],
            "age_approval_ratio_repeats": [min(spread), max(spread)],
            "under_25_approval_rate": under["approval_rate"],
            "under_25_decline_rate": under["decline_rate"],
            "sex_marital_approval_ratio": by_repeat[0]["sex_marital"]["ratios"]["approval_rate"]["value"],
            "foreign_worker_approval_ratio": by_repeat[0]["foreign_worker"]["ratios"]["approval_rate"][
                "value"
            ],
        }
        row["meets_target"] = bool(row["age_approval_ratio"] >= FOUR_FIFTHS and row["auc_cost"] <= AUC_BUDGET)
        rows.append(row)
    return rows


def rule_effect(oof: Mapping[str, np.ndarray], frame: pd.DataFrame) -> dict[str, Any]:
    """How much the age rule moves the as-is model's probabilities for applicants aged 62+."""
    protected = frame["age"].to_numpy() >= age_rule.AGE_PROTECTED_FROM
    drop = oof["no_rule"][:, protected] - oof["as_is"][:, protected]
    return {
        "protected_applicants": int(protected.sum()),
        "lowered_per_repeat": [int(np.sum(d > 1e-12)) for d in drop],
        "largest_fall": float(drop.max()) if drop.size else 0.0,
    }


LATENCY_AGES = (35, 62, 75, 100)
"""Ages the rule's latency is measured at: none added, the fewest (44 rows), typical, the most (82)."""
PROTOCOLS: dict[bool, dict[str, int]] = {
    False: {"splits": 5, "repeats": 2},
    True: {"splits": 3, "repeats": 1},
}
"""Folds for the treatments: the full run, and the quick one (tests, smoke runs)."""


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """What the model learns from: ``frame`` with the served treatment of age (:data:`SERVED`).

    Age left out: every row gets the same age, so no split and no weight can depend on it (a
    constant column is never split on, and a logistic weight on it stays exactly 0), while the ONNX
    graph keeps the input, so the API, the reasons' reference and drift monitoring are unchanged.
    """
    return _with_age(frame, AGE_MAPS[next(t.fit for t in TREATMENTS if t.name == SERVED)])


def evaluate(
    estimator: BaseEstimator,
    frame: pd.DataFrame,
    groups: pd.DataFrame,
    policy: Policy,
    *,
    seed: int,
    quick: bool,
    n_jobs: int = 2,
    resamples: int = config.BOOTSTRAP_RESAMPLES,
    treatments: Sequence[Treatment] = TREATMENTS,
) -> dict[str, Any]:
    """The whole fairness result: the served decisions by group, the treatments, the choice."""
    protocol = {**PROTOCOLS[quick], "seed": seed, "resamples": resamples, "quick": quick}
    oof, folds = out_of_fold(
        estimator,
        frame,
        treatments,
        seed=seed,
        splits=protocol["splits"],
        repeats=protocol["repeats"],
        n_jobs=n_jobs,
    )
    rows = compare_treatments(oof, folds, frame, groups, policy, seed=seed, resamples=resamples)
    by_name = {row["name"]: row for row in rows}
    served = by_name[SERVED]
    return {
        "protocol": protocol,
        "policy": policy.model_dump(),
        "n": len(frame),
        "default_rate": float(frame[TARGET].mean()),
        "served": SERVED,
        "assessment": assess(oof[SERVED][0], frame, groups, policy, seed=seed, resamples=resamples),
        "before": assess(oof["as_is"][0], frame, groups, policy, seed=seed, resamples=resamples)
        if "as_is" in oof
        else None,
        "treatments": rows,
        "rule_effect": rule_effect(oof, frame) if {"no_rule", "as_is"} <= set(oof) else None,
        "choice": {
            "served": SERVED,
            "meets_target": served["meets_target"],
            "meeting_target": [row["name"] for row in rows if row["meets_target"]],
            "four_fifths": FOUR_FIFTHS,
            "auc_budget": AUC_BUDGET,
        },
    }


def run(result: Any, frame: pd.DataFrame, raw_csv: Path, *, quick: bool, n_jobs: int = 2) -> dict[str, Any]:
    """:func:`evaluate` for a training run (``training.train.TrainResult``), with the age rule's latency."""
    seed = int(result.manifest.extra["seed"])
    with threadpool_limits(1):
        report = evaluate(
            result.estimator,
            frame,
            protected_groups(frame, raw_csv),
            result.manifest.policy,
            seed=seed,
            quick=quick,
            n_jobs=n_jobs,
        )
    report["model_version"] = result.manifest.model_version
    report["latency"] = rule_latency(result.manifest_path.parent / result.manifest.model_file, frame)
    return report


def rule_latency(model_path: Path, frame: pd.DataFrame, runs: int = 300) -> dict[str, dict[str, float]]:
    """p50 and p95 (ms) of the model run without and with the age rule: one applicant by age, and
    the data's rows as one batch (its applicants aged 62+ are what the rule adds)."""
    scorer = Scorer.from_bytes(model_path.read_bytes())
    feeds = {f"age_{age}": scorer.feed([{**EXAMPLE_APPLICANT, "age": age}]) for age in LATENCY_AGES}
    feeds["batch"] = scorer.feed(frame[list(FEATURE_NAMES)].to_dict("records"))
    found: dict[str, dict[str, float]] = {}
    for key, feed in feeds.items():
        for name, call in (("model", scorer.run), ("with_rule", scorer.score)):
            times = _timed(lambda call=call, feed=feed: call(feed), runs if key != "batch" else runs // 10)
            found[f"{key}_{name}"] = {
                "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)),
            }
    return found


def _timed(call: Callable[[], Any], runs: int, warm: int = 10) -> list[float]:
    for _ in range(warm):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def write(result: Mapping[str, Any], reports_dir: Path) -> tuple[Path, Path]:
    """``fairness.json`` and ``fairness.md`` in ``reports_dir``: the same result gives the same bytes."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    data = reports_dir / RESULT
    data.write_text(json.dumps(economics._json_safe(dict(result)), indent=2, sort_keys=True) + "\n")
    text = reports_dir / REPORT
    text.write_text(markdown(result))
    return data, text


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"


def _ci(values: Sequence[float] | None, fmt: str = "{:.1%}") -> str:
    if not values or any(v is None or v != v for v in values):
        return ""
    separator = " to " if min(values) < 0 else "-"  # "-98-155" would read as two negatives
    return f" ({fmt.format(values[0])}{separator}{fmt.format(values[1])})"


def smallest_groups(result: Mapping[str, Any], k: int = 3) -> str:
    """The ``k`` smallest groups across attributes, as "name n" text."""
    found = [(g["n"], g["group"]) for a in ATTRIBUTES for g in result["assessment"][a]["groups"]]
    return ", ".join(f"{name} {n}" for n, name in sorted(found)[:k])


def group_markdown(assessment: Mapping[str, Any]) -> list[str]:
    """The fairness tables, one per attribute, with the min/max ratios: shared with the model card."""
    lines: list[str] = []
    for attribute in ATTRIBUTES:
        found = assessment[attribute]
        lines += [
            f"**{found['label']}**",
            "",
            "| group | n | approval rate | good applicants approved | default rate among the approved"
            " | review | decline |",
            "|---|---:|---|---|---|---:|---:|",
        ]
        for row in found["groups"]:
            lines.append(
                f"| {row['group']} | {row['n']} | "
                + " | ".join(f"{_pct(row[m])}{_ci(row[f'{m}_ci'])}" for m in MEASURES)
                + f" | {_pct(row['review_rate'])} | {_pct(row['decline_rate'])} |"
            )
        ratios = found["ratios"]
        lines.append(
            "| **min/max ratio** | | "
            + " | ".join(f"**{ratios[m]['value']:.2f}**{_ci(ratios[m]['ci'], '{:.2f}')}" for m in MEASURES)
            + " | | |"
        )
        lines.append("")
    return lines


def markdown(result: Mapping[str, Any]) -> str:
    """``reports/fairness.md`` from the result alone (every figure comes from ``fairness.json``)."""
    protocol = result["protocol"]
    rows = {row["name"]: row for row in result["treatments"]}
    served = rows[result["served"]]
    before = rows.get("as_is")
    lines = [
        "# Fairness of the served decisions",
        "",
        f"Model `{result.get('model_version', 'n/a')}`. Written by `make train` (`training/fairness.py`)"
        " from `reports/fairness.json`; do not edit by hand.",
        "",
        "## How this is measured",
        "",
        f"- **Decisions**: out-of-fold probabilities of the champion's pipeline ({protocol['splits']}-fold"
        f" stratified CV x {protocol['repeats']} repeat(s), seed {protocol['seed']}, the champion's deployed"
        " hyperparameters), with Regulation B's age rule (`credit_api.age_rule`), through the served policy"
        " (`credit_api.policy.decide_many`). Approval means `approve`; reviews are not approvals.",
        f"- **Sample**: the {result['n']} applicants of `data/credit.csv`, unweighted (their default rate is"
        f" {result['default_rate']:.0%}; the real book's was much lower, so rates here are not the bank's).",
        "- **Groups**: age band from the model input; sex and marital status (UCI attribute 9) and"
        " foreign-worker status from the raw UCI file. Neither of those two is a model input; they are read"
        " here only to measure.",
        f"- **Intervals**: 95% percentile bootstrap over applicants ({protocol['resamples']} resamples),"
        " each ratio from the same resamples as its rates. Some groups are small"
        f" ({smallest_groups(result)}): read the intervals before the points.",
        f"- **Target** (issue #11): age-band approval ratio (lowest / highest) at or above {FOUR_FIFTHS:.2f}"
        f" (the four-fifths rule of thumb) for at most {AUC_BUDGET} of AUC.",
        "",
        f"## Served decisions by group ({served['label']})",
        "",
        *group_markdown(result["assessment"]),
    ]
    if result.get("before"):
        ratio = result["before"]["age_band"]["ratios"]["approval_rate"]
        lines += [
            f"Before this change (age as an input) the age-band approval ratio was {ratio['value']:.2f}"
            f"{_ci(ratio['ci'], '{:.2f}')}.",
            "",
        ]
    lines += _treatment_lines(result, rows, served, before)
    lines += _rule_lines(result)
    return "\n".join(lines).rstrip() + "\n"


def _treatment_lines(
    result: Mapping[str, Any], rows: Mapping[str, Any], served: Mapping[str, Any], before: Any
) -> list[str]:
    lines = [
        "## Options to close the age gap, side by side",
        "",
        "Same folds, same hyperparameters, the age rule applied to every row except the first. AUC and"
        " accuracy (at p = 0.5) are means over folds; savings (net, a year, against approving everyone, DM"
        " of 1973-75) and defaulters not booked (share of defaulters declined or referred) are"
        " `training/economics.py`'s figures on the first repeat; ratio = age-band approval ratio, its"
        " bootstrap interval, and its range over repeats.",
        "",
        "| option | AUC | AUC cost | accuracy | net savings / year | defaulters not booked | age ratio"
        " | under 25 approved | under 25 declined | meets target |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for row in result["treatments"]:
        spread = row["age_approval_ratio_repeats"]
        lines.append(
            f"| {'**' + row['label'] + '**' if row is served else row['label']} |"
            f" {row['roc_auc']:.4f} ± {row['roc_auc_std']:.3f} | {row['auc_cost']:+.4f} |"
            f" {row['accuracy']:.3f} | {row['net_savings_annual']:,.0f}"
            f"{_ci(row['net_savings_annual_ci'], '{:,.0f}')}"
            f" | {row['defaulters_not_booked']:.1%} | {row['age_approval_ratio']:.2f}"
            f"{_ci(row['age_approval_ratio_ci'], '{:.2f}')}, {spread[0]:.2f}-{spread[1]:.2f} |"
            f" {row['under_25_approval_rate']:.1%} | {row['under_25_decline_rate']:.1%} |"
            f" {'yes' if row['meets_target'] else 'no'} |"
        )
    lines += ["", "## Choice", ""]
    choice = result["choice"]
    meeting = [rows[name]["label"] for name in choice["meeting_target"]]
    lines.append(
        f"**Served: {served['label']}.** It {'meets' if choice['meets_target'] else 'does NOT meet'} the"
        f" target: age-band approval ratio {served['age_approval_ratio']:.2f}, AUC change"
        f" {-served['auc_cost']:+.4f}. Options meeting the target: {'; '.join(meeting) or 'none'}."
    )
    lines.append("")
    if before is not None:
        lines += ["Reasons:", "", *_reasons(rows, served, before), ""]
    return lines


def _range(row: Mapping[str, Any]) -> str:
    low, high = row["age_approval_ratio_repeats"]
    return f"{low:.2f}-{high:.2f}"


def _reasons(rows: Mapping[str, Any], served: Mapping[str, Any], before: Mapping[str, Any]) -> list[str]:
    """The written reasons for the choice, every figure and comparison taken from the rows."""
    others = [r for r in rows.values() if r["name"] not in (served["name"], "no_rule", "as_is")]
    short = [r["label"] for r in others if r["age_approval_ratio"] < FOUR_FIFTHS]
    savings = served["net_savings_annual"] - before["net_savings_annual"]
    booked = served["defaulters_not_booked"] - before["defaulters_not_booked"]
    return [
        f"- The gap: applicants under 25 are approved {served['under_25_approval_rate']:.0%} of the time"
        f" against {before['under_25_approval_rate']:.0%} with age as an input; the age-band ratio moves"
        f" from {before['age_approval_ratio']:.2f} to {served['age_approval_ratio']:.2f}. Left below"
        f" {FOUR_FIFTHS:.2f} by: {'; '.join(short) or 'none'}.",
        *(
            f"- Against {r['label']}, which also meets the target: age ratio"
            f" {served['age_approval_ratio']:.2f} (over repeats {_range(served)}) against"
            f" {r['age_approval_ratio']:.2f} ({_range(r)}), AUC {served['roc_auc']:.4f} against"
            f" {r['roc_auc']:.4f}; and it needs no age at all, so no age effect is left to argue about."
            for r in others
            if r["meets_target"]
        ),
        f"- The cost: AUC {served['roc_auc']:.4f} against {before['roc_auc']:.4f} (it may fall by at most"
        f" {AUC_BUDGET}), accuracy {served['accuracy'] - before['accuracy']:+.3f}, net savings"
        f" {savings:+,.0f} DM a year, defaulters not booked {booked:+.1%}; the savings' bootstrap"
        " intervals are wide (see the table).",
        "- Regulation B's age rule holds by construction (no age, no age effect): the export verifies"
        " that every row's probability is the same at every age and writes `age_invariant: true` into the"
        " manifest; the function checks that claim again at load and then skips its guard"
        " (`credit_api.age_rule`), which stays for any model that uses age. Age can no longer be a reason"
        " against anyone.",
        "- Monotone age only lowers older applicants' probabilities and a review is not an approval, so"
        " neither can lift the young's approval rate; flooring or banding keeps part of the young-age"
        " effect (their ratios are in the table).",
        f"- The other attributes' approval-rate ratios: sex and marital status"
        f" {served['sex_marital_approval_ratio']:.2f}, foreign-worker status"
        f" {served['foreign_worker_approval_ratio']:.2f} (four-fifths line {FOUR_FIFTHS:.2f}; small groups).",
    ]


def _rule_lines(result: Mapping[str, Any]) -> list[str]:
    lines = ["## Regulation B age rule", ""]
    effect = result.get("rule_effect")
    if effect:
        lowered = effect["lowered_per_repeat"]
        lines.append(
            f"With age as an input, the fold models gave {min(lowered)}-{max(lowered)} of the"
            f" {effect['protected_applicants']} applicants aged 62+ a higher probability of default at their"
            f" own age than at some younger age (largest difference {effect['largest_fall']:.4f}); the rule"
            " lowers each to the least over younger ages. With age left out the difference is 0 by"
            " construction (tested on every data row and on generated applicants)."
        )
        lines.append("")
    latency = result.get("latency")
    if latency:
        lines += [
            "Latency of the model run (onnxruntime, one thread, p50 / p95 ms, measured by `make train` on"
            " the training machine, which may be busy: compare the columns, not the absolute numbers):",
            "",
            "| age | model alone | with the age rule |",
            "|---:|---|---|",
        ]
        for key in [f"age_{age}" for age in LATENCY_AGES] + ["batch"]:
            if f"{key}_model" not in latency:
                continue
            model, ruled = latency[f"{key}_model"], latency[f"{key}_with_rule"]
            label = key.removeprefix("age_") if key != "batch" else f"all {result['n']} rows, one batch"
            lines.append(
                f"| {label} | {model['p50_ms']:.3f} / {model['p95_ms']:.3f} |"
                f" {ruled['p50_ms']:.3f} / {ruled['p95_ms']:.3f} |"
            )
        lines.append("")
    return lines
