"""The scheduled retrain (``RetrainFunction``): train a challenger, promote it only if it wins.

One run:

1. Read ``data/credit.csv`` from the model bucket and every decision in the decisions table.
   Decisions with a recorded outcome become extra training rows (their inputs, ``default`` =
   the outcome); rows that no longer pass the applicant schema are counted and left out.
2. Drift: PSI of each input and of the score, decisions of the last ``DRIFT_WINDOW_DAYS``
   against the champion's ``reference_distributions`` (:mod:`training.monitor`).
3. Train a challenger with :func:`training.train.train` on the combined frame.
4. Compare on the same rows: the challenger's out-of-fold probabilities (each row scored by a
   model that never saw it) against the champion's ONNX probabilities. The champion has seen
   most of these rows in training, so its AUC here is optimistic: the comparison leans
   towards keeping it, on purpose. **Rule: promote when challenger AUC >= champion AUC +
   MIN_AUC_GAIN**, or when there is no champion yet.
5. Always write the run's report under ``reports/retrain/<run id>/``; when promoting,
   publish the challenger with :func:`credit_api.model_store.publish`, which uploads the
   versioned model and manifest and then flips ``models/champion.json``.

Metrics (EMF, namespace from ``POWERTOOLS_METRICS_NAMESPACE``): ``RetrainPromoted``,
``RetrainKept``, ``ChallengerAuc``, ``ChampionAuc``, ``OutcomesUsed``, ``TrainingRows``,
``DriftPsiMax`` (the template's drift alarm) and ``DriftPsi`` per ``input`` dimension.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from credit_api.decision_log import from_attribute
from credit_api.model_store import POINTER_KEY, LoadedModel, load_from_s3, publish, read_pointer
from credit_api.schema import FEATURE_NAMES, TARGET, Applicant
from sklearn.metrics import roc_auc_score

from training import monitor
from training.config import SEED
from training.data import load as load_csv

DATA_KEY = "data/credit.csv"
REPORTS_PREFIX = "reports/retrain"
MIN_AUC_GAIN = 0.005
"""A challenger must beat the champion's ROC AUC by this much: less is within the noise of
a 1000-row sample (the bootstrap standard error of AUC here is about 0.015), and every
promotion changes decisions that customers see."""
DRIFT_WINDOW_DAYS = 30
REPORT_SUFFIXES = (".md", ".json", ".png", ".csv")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-retrain")
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-retrain",
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "LoanDefault",
)


class Challenger(Protocol):
    """What :func:`training.train.train` returns, as far as the retrain needs it."""

    manifest_path: Path
    oof_probabilities: np.ndarray


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
    challenger_auc: float
    champion_auc: float | None
    min_gain: float
    promote: bool
    reason: str


@dataclass
class RetrainResult:
    run_id: str
    outcome: str
    comparison: Comparison
    training_rows: int
    outcomes_used: int
    outcomes_rejected: int
    challenger_version: str
    champion_version: str | None
    drift: dict[str, Any]
    pointer: dict[str, str] | None = None
    report_keys: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def read_base_frame(s3: Any, bucket: str, work_dir: Path) -> pd.DataFrame:
    """``data/credit.csv`` from the bucket, loaded and validated exactly as training loads it."""
    path = work_dir / "credit.csv"
    path.write_bytes(s3.get_object(Bucket=bucket, Key=DATA_KEY)["Body"].read())
    return load_csv(path)


def scan_decisions(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every decision record in the table (the whole table: outcomes arrive for old decisions)."""
    records = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        records.extend({k: from_attribute(v) for k, v in item.items()} for item in page["Items"])
    return records


def outcome_rows(records: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Training rows from decisions with an outcome, and how many were rejected by the schema."""
    rows, rejected = [], 0
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
    return rows, rejected


def combined_frame(base: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if not rows:
        return base
    extra = pd.DataFrame(list(rows), columns=list(base.columns)).astype(base.dtypes.to_dict())
    return pd.concat([base, extra], ignore_index=True)


def recent(records: Sequence[Mapping[str, Any]], now: datetime, days: int) -> list[Mapping[str, Any]]:
    since = now - timedelta(days=days)
    return [r for r in records if _parse_time(r.get("created_at")) >= since]


def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def current_champion(s3: Any, bucket: str) -> LoadedModel | None:
    """The served champion, verified as the function verifies it; ``None`` if none was ever published.

    Without ``s3:ListBucket`` (the role does not have it) S3 answers 403, not 404, for a
    missing pointer: that fails the run with a message saying what to do.
    """
    try:
        s3.head_object(Bucket=bucket, Key=POINTER_KEY)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey"):
            return None
        raise RuntimeError(
            f"cannot read s3://{bucket}/{POINTER_KEY} ({code or exc.__class__.__name__}): "
            "publish a first champion with `python -m infra.seed`, or check the function's role"
        ) from exc
    return load_from_s3(s3, bucket, read_pointer(s3, bucket))


def compare(
    labels: np.ndarray,
    challenger_oof: np.ndarray,
    champion_probabilities: np.ndarray | None,
    min_gain: float = MIN_AUC_GAIN,
) -> Comparison:
    """The promotion rule, on one set of rows: challenger AUC >= champion AUC + ``min_gain``."""
    challenger_auc = float(roc_auc_score(labels, challenger_oof))
    if champion_probabilities is None:
        return Comparison(challenger_auc, None, min_gain, True, "no champion has been published")
    champion_auc = float(roc_auc_score(labels, champion_probabilities))
    promote = challenger_auc >= champion_auc + min_gain
    verb = "beats" if promote else "does not beat"
    reason = f"challenger AUC {challenger_auc:.4f} {verb} champion AUC {champion_auc:.4f} + {min_gain}"
    return Comparison(challenger_auc, champion_auc, min_gain, promote, reason)


def upload_reports(s3: Any, bucket: str, prefix: str, directory: Path, result: RetrainResult) -> list[str]:
    """The run's ``retrain.json`` and the challenger's training reports, under ``prefix``."""
    keys = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in REPORT_SUFFIXES):
        key = f"{prefix}/{path.relative_to(directory).as_posix()}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    key = f"{prefix}/retrain.json"
    result.report_keys = [*keys, key]
    body = json.dumps(result.summary(), indent=2).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return result.report_keys


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
        from training.train import train as trainer
    now = now or datetime.now(UTC)
    run_id = now.strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        work = Path(tmp)
        records = scan_decisions(dynamodb, settings.table)
        rows, rejected = outcome_rows(records)
        frame = combined_frame(read_base_frame(s3, settings.bucket, work), rows)
        champion = current_champion(s3, settings.bucket)
        drift_report = (
            monitor.drift(
                champion.manifest.reference_distributions,
                recent(records, now, DRIFT_WINDOW_DAYS),
                model_version=champion.version,
            ).as_dict()
            if champion
            else {}
        )
        logger.info("retrain data", extra={"rows": len(frame), "outcomes": len(rows), "rejected": rejected})
        challenger = trainer(frame, out_dir=work / "challenger", seed=seed, quick=settings.quick)
        labels = frame[TARGET].to_numpy()
        champion_probabilities = (
            champion.scorer.predict(frame[list(FEATURE_NAMES)].to_dict("records")) if champion else None
        )
        comparison = compare(labels, np.asarray(challenger.oof_probabilities), champion_probabilities)
        model_dir = Path(challenger.manifest_path).parent
        challenger_version = json.loads(Path(challenger.manifest_path).read_text())["model_version"]
        result = RetrainResult(
            run_id=run_id,
            outcome="promoted" if comparison.promote else "kept",
            comparison=comparison,
            training_rows=len(frame),
            outcomes_used=len(rows),
            outcomes_rejected=rejected,
            challenger_version=challenger_version,
            champion_version=champion.version if champion else None,
            drift=drift_report,
        )
        if comparison.promote:
            result.pointer = publish(s3, settings.bucket, model_dir)
        upload_reports(s3, settings.bucket, f"{REPORTS_PREFIX}/{run_id}", work / "challenger", result)
    logger.info("retrain finished", extra={"outcome": result.outcome, "reason": comparison.reason})
    return result


def record_metrics(result: RetrainResult) -> None:
    """The run as EMF metrics; ``DriftPsiMax`` feeds the template's drift alarm."""
    metrics.add_metric(name="RetrainPromoted", unit=MetricUnit.Count, value=int(result.outcome == "promoted"))
    metrics.add_metric(name="RetrainKept", unit=MetricUnit.Count, value=int(result.outcome == "kept"))
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
