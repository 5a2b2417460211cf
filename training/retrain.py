"""The scheduled retrain (``RetrainFunction``): train a challenger, promote it only if it wins.

One run:

1. Read ``data/credit.csv`` from the model bucket and the decisions with an outcome,
   incrementally: the snapshot of labelled decisions plus the outcomes recorded since it was
   last brought up to date (:mod:`training.labelled_decisions`; no Scan, the cost is the new
   outcomes). Decisions with a recorded outcome become extra training rows (their inputs,
   ``default`` = the outcome); rows that no longer pass the applicant schema are counted and left
   out. The report's ``labelled_read`` says how many were read and from when.
2. Drift: PSI of each input and of the score, decisions of the last ``DRIFT_WINDOW_DAYS`` (read
   from the table's day index, :func:`credit_api.decision_reads.window`, not scanned) against the
   champion's ``reference_distributions`` (:mod:`training.monitor`). The shadow comparison uses
   those decisions and the labelled ones (the shadow's AUC needs outcomes).
3. Train a challenger with :func:`training.train.train` on the combined frame.
4. Compare, each model on rows it was not trained on (a champion scored on its own training
   rows would look better than it is, a forest most of all):

   - *fresh outcomes*: when at least ``FRESH_MIN_ROWS`` outcomes, ``FRESH_MIN_PER_CLASS`` of
     each class, were recorded after the champion was built, both are scored on those rows:
     the challenger by its out-of-fold probabilities, the champion by its ONNX model;
   - otherwise *cross-validation*: the challenger's nested-CV ROC AUC against the one the
     champion's manifest records (same protocol, ``training.train``).

   **Rule: promote when challenger AUC >= champion AUC + MIN_AUC_GAIN.** With no champion,
   or a champion without a cross-validated AUC (the provisional bootstrap model) and too few
   fresh outcomes, the challenger is promoted.

   **Fairness gate** (issue #11), after the AUC rule: a challenger is kept, whatever its AUC,
   when its age-band approval ratio (lowest over highest approval rate across
   ``training.fairness.AGE_BANDS``) is below ``AGE_RATIO_FLOOR``, or more than
   ``AGE_RATIO_MARGIN`` below the champion's. Both through the policy in force (the published
   one, else each model's manifest policy, as the function serves them), and both out of fold,
   like with like (:func:`training.fairness.age_band_approval` computes every ratio): the
   challenger's from its out-of-fold probabilities on the run's rows, the champion's as its
   manifest records it (``age_approval``: its out-of-fold probabilities on its own training
   rows, under its manifest's policy). A champion scored by its ONNX model on the run's rows,
   mostly its own training rows, would be measured in-sample, sharper than it serves, which
   biases the comparison one way or the other. The recorded ratio holds only for the manifest's
   policy, so when the policy in force differs (a published policy) or the manifest predates
   the field, the champion is scored by its ONNX model on the run's *fresh* rows (outcomes
   recorded after it was built, out of sample) when there are ``AGE_FRESH_MIN_ROWS`` of them and
   the ratio can be measured on them, and the margin then compares it with the challenger's
   out-of-fold ratio on the same rows (the same rows share their sample's noise; the floor still
   takes the challenger's ratio on all rows); else, as before, on all the run's rows (in-sample).
   ``age_gate.basis`` in the report says which (``recorded out of fold``, ``fresh outcomes``,
   ``in-sample``), and the gate's reason says why. The verdict's reason says which condition
   failed; ``age_gate`` in the report holds both ratios and rates.
5. Always write the run's report under ``reports/retrain/<run id>/``. When promoting, the
   challenger is stored as an immutable verified version (:mod:`credit_api.registry`), the
   report is written, and only then is the pointer switched: the pointer's change record
   names the report, so no promotion exists without its report.

**Safe promotion.** The champion and its ETag are read once, at the start; the switch is
conditional on that ETag. If another run or an operator changed the champion meanwhile,
the run reads the new champion, compares the challenger against it by the same rule, and
either switches conditionally once more or stops: verdict ``superseded``. The report is
rewritten with each new decision before the switch it describes. A report left saying
``promoted`` by a run that died before its switch describes a switch that never happened:
the champion's history (``credit models history``) is the record of what did.

The run's **verdict** is ``promoted``, ``kept`` or ``superseded`` (not "outcome": that word
is the loan's observed default).

Metrics (EMF, namespace from ``POWERTOOLS_METRICS_NAMESPACE``): ``RetrainPromoted``,
``RetrainKept``, ``RetrainSuperseded``, ``ChallengerAuc``, ``ChampionAuc``, ``OutcomesUsed``,
``TrainingRows``, ``DriftPsiMax`` (the template's drift alarm) and ``DriftPsi`` per ``input``
dimension.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from credit_api import manifest, policy_store, registry
from credit_api.aws import error_code
from credit_api.decision_reads import window
from credit_api.model_store import POINTER_KEY, LoadedModel
from credit_api.policy import Policy
from credit_api.schema import FEATURE_NAMES, TARGET, Applicant
from credit_api.shadow import report_comparison as shadow_comparison
from sklearn.metrics import roc_auc_score

from training import fairness, labelled_decisions, monitor
from training.config import SEED
from training.data import load as load_csv

DATA_KEY = "data/credit.csv"
REPORTS_PREFIX = "reports/retrain"
MIN_AUC_GAIN = 0.005
"""A challenger must beat the champion's ROC AUC by this much: every promotion changes the
decisions customers get, so a tie or a rounding-level gain keeps the champion."""
FRESH_MIN_ROWS = 100
FRESH_MIN_PER_CLASS = 10
"""Fewer fresh outcomes than this make an AUC too noisy to judge on: cross-validation decides."""
AGE_RATIO_FLOOR = fairness.FOUR_FIFTHS
"""No challenger whose age-band approval ratio is below this is promoted: the four-fifths rule of
thumb (0.80) that ``reports/fairness.md`` measures the served model against."""
AGE_RATIO_MARGIN = 0.02
"""Nor one whose ratio is more than this below the champion's: an AUC gain does not buy a wider
age gap. Not zero, because the ratio moves by a few hundredths between models of equal merit
(0.75-0.83 across repeats of one pipeline, issue #11); an exact-or-better rule would keep
challengers for noise."""
MIN_BAND_ROWS = fairness.MIN_BAND_ROWS
"""Age bands with fewer rows than this are left out of the ratio (``training.fairness``)."""
AGE_FRESH_MIN_ROWS = 1000
"""Fresh outcomes needed to measure the champion's age-band ratio on them, when its manifest's
record does not apply: as many as the 1000 rows a recorded ratio is measured on. On a hundred
rows (enough for an AUC) a band of twenty moves the ratio by 0.05 per approval, far more than
``AGE_RATIO_MARGIN``: fewer fresh outcomes leave the champion measured in-sample."""
BASES = ("recorded out of fold", "fresh outcomes", "in-sample")
"""How the champion's age-band ratio was measured, best first (module docstring: fairness gate)."""
CV_AUC = "roc_auc"
"""The key of the nested-CV ROC AUC in ``TrainResult.cv_metrics`` and ``Manifest.metrics``."""
DRIFT_WINDOW_DAYS = 30
REPORT_SUFFIXES = (".md", ".json", ".png", ".csv")
VERDICTS = ("promoted", "kept", "superseded")
SEARCH_ROWS = 10_000
"""The challenger's hyperparameter searches tune on a stratified subsample of at most this many
rows and refit on all of them (:func:`training.tune.bounded_search`): the full search's time grows
with the rows. With the outer folds run once past 20,000 rows (:func:`training.train.protocol_for`)
a retrain on 100,000 rows took 327 to 363 s with one fold worker, as in Lambda, on a quiet machine
(822 s beside a CI run; BENCHMARKS.md)."""

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-retrain")
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-retrain",
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "LoanDefault",
)


class Challenger(Protocol):
    """What :func:`training.train.train` returns, as far as the retrain needs it."""

    manifest_path: Path
    oof_probabilities: np.ndarray
    cv_metrics: dict[str, float]


Trainer = Callable[..., Challenger]


@dataclass(frozen=True)
class RetrainSettings:
    bucket: str
    table: str
    endpoint_url: str | None = None
    quick: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainSettings:
        env = os.environ if env is None else env
        missing = [name for name in ("MODEL_BUCKET", "DECISIONS_TABLE") if not env.get(name)]
        if missing:
            raise ValueError(f"the retrain needs {', '.join(missing)} set")
        return cls(
            bucket=env["MODEL_BUCKET"],
            table=env["DECISIONS_TABLE"],
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            quick=env.get("RETRAIN_QUICK", "").lower() in ("1", "true"),
        )


@dataclass(frozen=True)
class Comparison:
    basis: str
    challenger_auc: float
    champion_auc: float | None
    min_gain: float
    promote: bool
    reason: str


@dataclass(frozen=True)
class AgeGate:
    """The fairness condition on a promotion: the challenger's age-band approval ratio against the
    floor and the champion's (None: not measured), with the approval rates per band behind them."""

    challenger_ratio: float | None
    champion_ratio: float | None
    challenger_rates: dict[str, float]
    champion_rates: dict[str, float]
    floor: float
    margin: float
    passed: bool
    reason: str
    basis: str | None = None
    """How the champion's ratio was measured (one of ``BASES``; None without a champion)."""
    challenger_ratio_alike: float | None = None
    """The challenger's ratio on the champion's rows, when those are the fresh outcomes: the margin's."""


@dataclass(frozen=True)
class PolicyInForce:
    """The published decision policy (None: none published, each model's manifest policy applies)."""

    published: Policy | None = None
    error: str | None = None
    """Why the published policy could not be read; the gate then keeps the champion."""

    def of(self, model: manifest.Manifest) -> Policy:
        """The policy the model of this manifest would decide under if it served."""
        return self.published if self.published is not None else model.policy


@dataclass(frozen=True)
class Outcomes:
    """Training rows from decisions with an outcome, when each outcome was recorded, and rejects."""

    rows: list[dict[str, Any]]
    recorded_at: list[datetime]
    rejected: int


@dataclass
class RetrainResult:
    run_id: str
    verdict: str
    comparison: Comparison
    training_rows: int
    outcomes_used: int
    outcomes_rejected: int
    challenger_version: str
    champion_version: str | None
    drift: dict[str, Any]
    pointer: dict[str, Any] | None = None
    report_keys: list[str] = field(default_factory=list)
    champion_changed_to: list[str | None] = field(default_factory=list)
    """Champions found to have replaced the one the run started from, in the order found."""
    shadow: dict[str, Any] | None = None
    """The live comparison of the champion and the shadow challenger, when one runs
    (:func:`credit_api.shadow.compare`): the swap set and both AUCs on the same loans."""
    age_gate: dict[str, Any] | None = None
    """The fairness gate (:class:`AgeGate`) as judged against the last champion compared."""
    labelled_read: dict[str, Any] | None = None
    """How the labelled decisions were read (:meth:`training.labelled_decisions.Refresh.summary`)."""

    def summary(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def read_base_frame(s3: Any, bucket: str, work_dir: Path) -> pd.DataFrame:
    """``data/credit.csv`` from the bucket, loaded and validated exactly as training loads it."""
    path = work_dir / "credit.csv"
    path.write_bytes(s3.get_object(Bucket=bucket, Key=DATA_KEY)["Body"].read())
    return load_csv(path)


def outcome_rows(records: Sequence[Mapping[str, Any]]) -> Outcomes:
    """Decisions with an outcome as training rows; rows the applicant schema now rejects are counted."""
    rows, recorded_at, rejected = [], [], 0
    for record in records:
        outcome = record.get("outcome")
        if not isinstance(outcome, Mapping) or not isinstance(outcome.get("defaulted"), bool):
            continue
        try:
            applicant = Applicant.model_validate(record.get("inputs") or {})
        except ValueError:
            rejected += 1
            continue
        rows.append({**applicant.model_dump(), TARGET: int(outcome["defaulted"])})
        recorded_at.append(_parse_time(outcome.get("recorded_at") or record.get("created_at")))
    return Outcomes(rows, recorded_at, rejected)


def combined_frame(base: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if not rows:
        return base
    extra = pd.DataFrame(list(rows), columns=list(base.columns)).astype(base.dtypes.to_dict())
    return pd.concat([base, extra], ignore_index=True)


def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def current_champion(s3: Any, bucket: str) -> tuple[registry.Champion, LoadedModel | None]:
    """The champion pointer with its ETag, and its model verified as the function verifies it.

    Without ``s3:ListBucket`` (the role does not have it) S3 answers 403, not 404, for a
    missing pointer: that fails the run with a message saying what to do.
    """
    try:
        champion = registry.read_champion(s3, bucket)
    except Exception as exc:
        raise RuntimeError(
            f"cannot read s3://{bucket}/{POINTER_KEY} ({error_code(exc)}): "
            "publish a first champion with `credit seed`, or check the function's role"
        ) from exc
    if champion.invalid:
        raise RuntimeError(f"{champion.invalid}: fix it with `credit models promote` before retraining")
    if champion.pointer is None:
        return champion, None
    return champion, registry.verify(s3, bucket, registry.ref_of(champion.pointer))


def auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(roc_auc_score(labels, probabilities))


def enough_fresh(labels: np.ndarray) -> bool:
    defaults = int(labels.sum())
    return len(labels) >= FRESH_MIN_ROWS and min(defaults, len(labels) - defaults) >= FRESH_MIN_PER_CLASS


def compare(
    *,
    challenger_cv_auc: float,
    champion_cv_auc: float | None,
    has_champion: bool,
    fresh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    min_gain: float = MIN_AUC_GAIN,
) -> Comparison:
    """The promotion rule (module docstring); ``fresh``: labels, challenger OOF, champion probabilities."""
    if fresh is not None and has_champion and enough_fresh(fresh[0]):
        labels, challenger_oof, champion_probabilities = fresh
        basis = f"{len(labels)} fresh outcomes"
        challenger, champion = auc(labels, challenger_oof), auc(labels, champion_probabilities)
    else:
        basis, challenger, champion = "cross-validation", challenger_cv_auc, champion_cv_auc
    if not has_champion or champion is None:
        why = (
            "no champion has been published"
            if not has_champion
            else "the champion has no cross-validated AUC"
        )
        return Comparison(basis, challenger, None, min_gain, True, why)
    promote = challenger >= champion + min_gain
    verb = "beats" if promote else "does not beat"
    reason = f"{basis}: challenger AUC {challenger:.4f} {verb} champion AUC {champion:.4f} + {min_gain}"
    return Comparison(basis, challenger, champion, min_gain, promote, reason)


def judge_age_ratio(
    challenger: float | None,
    champion: float | None,
    *,
    floor: float = AGE_RATIO_FLOOR,
    margin: float = AGE_RATIO_MARGIN,
    alike: float | None = None,
) -> tuple[bool, str]:
    """Whether the challenger's ratio may be promoted, and why (module docstring: fairness gate).

    ``alike``: the challenger's ratio on the same rows as the champion's (fresh outcomes), which
    the margin then compares instead of ``challenger``: a ratio moves with its sample, and the
    same rows share that noise. The floor always takes ``challenger``.
    """
    if challenger is None:
        return False, (
            "the challenger's age-band approval ratio cannot be measured "
            f"(no approvals, or fewer than two age bands of {MIN_BAND_ROWS} rows)"
        )
    if challenger < floor:
        return (
            False,
            f"the challenger's age-band approval ratio {challenger:.3f} is below the floor {floor:.2f}",
        )
    compared = challenger if alike is None else alike
    if champion is not None and round(champion - compared, 9) > margin:
        return False, (
            f"the challenger's age-band approval ratio {compared:.3f} is more than {margin} "
            f"below the champion's {champion:.3f}"
        )
    against = f", champion's {champion:.3f}" if champion is not None else ""
    same_rows = f" ({compared:.3f} on the champion's rows)" if alike is not None else ""
    return True, (
        f"age-band approval ratio {challenger:.3f}{same_rows}{against}: floor {floor:.2f}, margin {margin}"
    )


def policy_in_force(s3: Any, bucket: str) -> PolicyInForce:
    """The published policy, if any. The role cannot list the bucket, so a 403 is a missing pointer."""
    try:
        pointer = policy_store.read_pointer(s3, bucket, denied_is_absent=True)
        if pointer is None:
            return PolicyInForce()
        return PolicyInForce(policy_store.load_document(s3, bucket, pointer).policy)
    except policy_store.PolicyLoadError as exc:
        logger.warning("published policy unreadable", extra={"error": str(exc)})
        return PolicyInForce(error=str(exc))


@dataclass(frozen=True)
class ChampionApproval:
    """The champion's approval rates by age band, the basis (one of ``BASES``) and why that one;
    ``positions``: the rows of the run's frame it was measured on, for the fresh basis only."""

    rates: dict[str, float]
    basis: str
    why: str
    positions: list[int] | None = None


def champion_age_approval(
    champion: LoadedModel, frame: pd.DataFrame, fresh: Sequence[int], policy: PolicyInForce
) -> ChampionApproval:
    """Its manifest's out-of-fold record when that holds for the policy in force; else its ONNX
    model on the ``fresh`` positions of ``frame`` when enough; else on all of ``frame`` (in-sample)."""
    in_force = policy.of(champion.manifest)
    recorded = champion.manifest.age_approval
    if recorded is not None and in_force == champion.manifest.policy:
        return ChampionApproval(dict(recorded.rates), BASES[0], "out of fold, as its manifest records it")
    why = (
        "its manifest records no out-of-fold approval"
        if recorded is None
        else "the policy in force is not its manifest's"
    )
    if len(fresh) >= AGE_FRESH_MIN_ROWS:
        rows = frame.iloc[list(fresh)]
        measured = fairness.age_band_approval(_champion_probabilities(champion, rows), rows, in_force)
        if measured.ratio is not None:
            return ChampionApproval(
                measured.rates, BASES[1], f"on {len(fresh)} fresh outcomes, as {why}", list(fresh)
            )
    measured = fairness.age_band_approval(_champion_probabilities(champion, frame), frame, in_force)
    return ChampionApproval(
        measured.rates, BASES[2], f"in-sample on the run's rows, as {why} and too few fresh outcomes"
    )


def _champion_probabilities(champion: LoadedModel, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(champion.scorer.predict(rows[list(FEATURE_NAMES)].to_dict("records")))


def age_gate(
    frame: pd.DataFrame,
    challenger_oof: np.ndarray,
    challenger_manifest: manifest.Manifest,
    champion: LoadedModel | None,
    policy: PolicyInForce,
    fresh: Sequence[int] = (),
) -> AgeGate:
    """The fairness gate: the challenger out of fold on the run's rows, the champion on the best
    basis it has (:func:`champion_age_approval`); ``fresh``: positions of the fresh outcomes."""
    oof = np.asarray(challenger_oof)
    challenger_policy = policy.of(challenger_manifest)
    challenger = fairness.age_band_approval(oof, frame, challenger_policy)
    measured = champion_age_approval(champion, frame, fresh, policy) if champion is not None else None
    alike = None
    if measured is not None and measured.positions is not None:
        rows = frame.iloc[measured.positions]
        alike = fairness.age_band_approval(oof[measured.positions], rows, challenger_policy).ratio
    champion_ratio = fairness.age_ratio(measured.rates) if measured else None
    passed, reason = judge_age_ratio(challenger.ratio, champion_ratio, alike=alike)
    if measured is not None:
        reason = f"{reason} (the champion's measured {measured.why})"
    if policy.error is not None:
        passed, reason = False, f"the published policy cannot be read ({policy.error})"
    return AgeGate(
        challenger_ratio=challenger.ratio,
        champion_ratio=champion_ratio,
        challenger_rates=dict(challenger.rates),
        champion_rates=measured.rates if measured else {},
        floor=AGE_RATIO_FLOOR,
        margin=AGE_RATIO_MARGIN,
        passed=passed,
        reason=reason,
        basis=measured.basis if measured else None,
        challenger_ratio_alike=alike,
    )


def gated(comparison: Comparison, gate: AgeGate) -> Comparison:
    """The comparison with the fairness gate applied: a promotion it refuses becomes a keep."""
    if not comparison.promote or gate.passed:
        return comparison
    return replace(comparison, promote=False, reason=f"{comparison.reason}; kept: {gate.reason}")


def _fresh(
    frame: pd.DataFrame, positions: Sequence[int], champion: LoadedModel | None, oof: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Labels, challenger OOF and champion probabilities on the fresh ``positions`` of ``frame``."""
    if champion is None or not positions:
        return None
    rows = frame.iloc[list(positions)]
    champion_probabilities = champion.scorer.predict(rows[list(FEATURE_NAMES)].to_dict("records"))
    return rows[TARGET].to_numpy(), oof[list(positions)], champion_probabilities


def _fresh_positions(base_rows: int, outcomes: Outcomes, champion: LoadedModel | None) -> list[int]:
    """Positions in the run's frame of the outcomes recorded after the champion was built."""
    if champion is None:
        return []
    built = champion.manifest.created_at
    built = built if built.tzinfo else built.replace(tzinfo=UTC)
    return [base_rows + i for i, at in enumerate(outcomes.recorded_at) if at > built]


def upload_training_reports(s3: Any, bucket: str, prefix: str, directory: Path) -> list[str]:
    """The challenger's training reports (and its manifest), under ``prefix``."""
    keys = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in REPORT_SUFFIXES):
        key = f"{prefix}/{path.relative_to(directory).as_posix()}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def write_report(s3: Any, bucket: str, key: str, result: RetrainResult) -> None:
    body = json.dumps(result.summary(), indent=2).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


@dataclass
class _Run:
    """What a run carries from its comparison to its switch."""

    s3: Any
    bucket: str
    frame: pd.DataFrame
    base_rows: int
    outcomes: Outcomes
    challenger: Challenger
    report_key: str
    challenger_manifest: manifest.Manifest
    policy: PolicyInForce


def _judge(run: _Run, champion: LoadedModel | None) -> tuple[Comparison, AgeGate]:
    """The promotion rule, then the fairness gate on it."""
    oof = np.asarray(run.challenger.oof_probabilities)
    fresh = _fresh_positions(run.base_rows, run.outcomes, champion)
    comparison = compare(
        challenger_cv_auc=float(run.challenger.cv_metrics[CV_AUC]),
        champion_cv_auc=champion.manifest.metrics.get(CV_AUC) if champion else None,
        has_champion=champion is not None,
        fresh=_fresh(run.frame, fresh, champion, oof),
    )
    gate = age_gate(run.frame, oof, run.challenger_manifest, champion, run.policy, fresh)
    return gated(comparison, gate), gate


def _promote(run: _Run, result: RetrainResult, started_from: registry.Champion) -> None:
    """Store the challenger, then (report first) switch conditionally; re-compare once if beaten to it."""
    ref, _ = registry.store_dir(run.s3, run.bucket, Path(run.challenger.manifest_path).parent)
    current = started_from
    for attempt in (1, 2):
        result.verdict = "promoted"
        result.pointer = registry.plan(
            ref,
            current,
            action="promote",
            by=f"retrain:{result.run_id}",
            reason=result.comparison.reason,
            metrics=run.challenger.cv_metrics,
            comparison=asdict(result.comparison),
            report_key=run.report_key,
        )
        write_report(run.s3, run.bucket, run.report_key, result)
        try:
            registry.switch(run.s3, run.bucket, result.pointer, current)
            return
        except registry.ChampionChanged:
            result.pointer = None
            current, champion = current_champion(run.s3, run.bucket)
            result.champion_changed_to.append(current.version)
            result.champion_version = current.version
            result.comparison, gate = _judge(run, champion)
            result.age_gate = asdict(gate)
            logger.warning(
                "the champion changed during the run",
                extra={"champion": current.version, "promote": result.comparison.promote, "attempt": attempt},
            )
            if attempt == 2 or not result.comparison.promote:
                break
    result.verdict = "superseded"
    write_report(run.s3, run.bucket, run.report_key, result)


def retrain(
    s3: Any,
    dynamodb: Any,
    settings: RetrainSettings,
    *,
    trainer: Trainer | None = None,
    now: datetime | None = None,
    seed: int = SEED,
) -> RetrainResult:
    """One retrain run against the bucket and table in ``settings``; see the module docstring."""
    if trainer is None:
        from training.train import train

        trainer = functools.partial(train, max_search_rows=SEARCH_ROWS)
    now = now or datetime.now(UTC)
    run_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"  # overlapping runs, distinct reports
    prefix = f"{REPORTS_PREFIX}/{run_id}"
    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        work = Path(tmp)
        started_from, champion = current_champion(s3, settings.bucket)
        labelled = labelled_decisions.refresh(s3, dynamodb, settings.bucket, settings.table)
        outcomes = outcome_rows(labelled.records)
        recent = window(dynamodb, settings.table, now - timedelta(days=DRIFT_WINDOW_DAYS), now)
        base = read_base_frame(s3, settings.bucket, work)
        frame = combined_frame(base, outcomes.rows)
        drift_report = (
            monitor.drift(
                champion.manifest.reference_distributions, recent, model_version=champion.version
            ).as_dict()
            if champion
            else {}
        )
        logger.info(
            "retrain data",
            extra={
                "rows": len(frame),
                "outcomes": len(outcomes.rows),
                "rejected": outcomes.rejected,
                **labelled.summary(),
            },
        )
        challenger = trainer(frame, out_dir=work / "challenger", seed=seed, quick=settings.quick)
        challenger_manifest = manifest.Manifest.model_validate_json(
            Path(challenger.manifest_path).read_text()
        )
        run = _Run(
            s3,
            settings.bucket,
            frame,
            len(base),
            outcomes,
            challenger,
            f"{prefix}/retrain.json",
            challenger_manifest,
            policy_in_force(s3, settings.bucket),
        )
        comparison, gate = _judge(run, champion)
        result = RetrainResult(
            run_id=run_id,
            verdict="promoted" if comparison.promote else "kept",
            comparison=comparison,
            training_rows=len(frame),
            outcomes_used=len(outcomes.rows),
            outcomes_rejected=outcomes.rejected,
            challenger_version=challenger_manifest.model_version,
            champion_version=champion.version if champion else None,
            drift=drift_report,
            shadow=shadow_comparison(
                s3, settings.bucket, labelled_decisions.joined(recent, labelled.records)
            ),
            age_gate=asdict(gate),
            labelled_read=labelled.summary(),
        )
        keys = upload_training_reports(s3, settings.bucket, prefix, work / "challenger")
        result.report_keys = [*keys, run.report_key]
        if comparison.promote:
            _promote(run, result, started_from)
        else:
            write_report(s3, settings.bucket, run.report_key, result)
    logger.info("retrain finished", extra={"verdict": result.verdict, "reason": result.comparison.reason})
    return result


def record_metrics(result: RetrainResult) -> None:
    """The run as EMF metrics; ``DriftPsiMax`` feeds the template's drift alarm."""
    for verdict in VERDICTS:
        name = f"Retrain{verdict.capitalize()}"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=int(result.verdict == verdict))
    metrics.add_metric(name="ChallengerAuc", unit=MetricUnit.NoUnit, value=result.comparison.challenger_auc)
    if result.comparison.champion_auc is not None:
        metrics.add_metric(name="ChampionAuc", unit=MetricUnit.NoUnit, value=result.comparison.champion_auc)
    metrics.add_metric(name="TrainingRows", unit=MetricUnit.Count, value=result.training_rows)
    metrics.add_metric(name="OutcomesUsed", unit=MetricUnit.Count, value=result.outcomes_used)
    if result.drift.get("max_psi") is not None:
        metrics.add_metric(name="DriftPsiMax", unit=MetricUnit.NoUnit, value=result.drift["max_psi"])
    for name, value in result.drift.get("psi", {}).items():
        dimensions = {"service": metrics.service, "input": name}
        with single_metric(
            name="DriftPsi",
            unit=MetricUnit.NoUnit,
            value=value,
            namespace=metrics.namespace,
            default_dimensions=dimensions,
        ):
            pass


def _clients(settings: RetrainSettings) -> tuple[Any, Any]:
    import boto3

    session = boto3.session.Session()
    return (
        session.client("s3", endpoint_url=settings.endpoint_url),
        session.client("dynamodb", endpoint_url=settings.endpoint_url),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge scheduled event in, the run's summary out (also in ``reports/retrain/``)."""
    settings = RetrainSettings.from_env()
    s3, dynamodb = _clients(settings)
    result = retrain(s3, dynamodb, settings)
    record_metrics(result)
    return result.summary()
