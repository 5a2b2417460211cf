"""The monitoring report (``credit monitor`` and ``MonitorFunction``): is the champion still right?

From the decision log (with the outcomes recorded on it) and the champion's manifest, one
report a risk officer reads (:mod:`training.monitoring_measures` computes, with the thresholds
of :mod:`training.monitoring_config`; :mod:`training.monitoring_html` renders):

- volumes and the approve/review/decline mix per ISO week;
- the score, grade and every input against the champion's training reference: PSI with the
  per-bin table (characteristic analysis);
- outcome maturity: a loan's outcome is final only ``performance_window_days`` after its
  decision; figures from younger loans are labelled immature (provisional), never final;
- with outcomes (:mod:`training.monitoring_outcomes`): AUC and Gini with bootstrap intervals,
  observed against predicted default rate per grade and per age band (exact binomial test);
- approval rate per age band per month, with the lowest/highest ratio (four-fifths floor);
- the shadow challenger against the champion, when one ran;
- model and policy versions per week.

**Where it is written** (a contract: ``GET /monitoring`` reads it). In the model bucket::

    reports/monitoring/<YYYY-MM-DD>/report.json
    reports/monitoring/<YYYY-MM-DD>/report.html
    reports/monitoring/latest.json   {"date", "generated_at", "html", "json", "status"}

``html`` and ``json`` are the keys of the two files; the pointer is written last, so it never
names a report that is not all there. Locally the same layout under the reports directory,
the pointer's paths relative to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.model_store import sha256
from credit_api.policy import GRADES

from training import labelled_decisions
from training import monitoring_measures as measures
from training import monitoring_outcomes as outcomes
from training.fairness import AGE_BANDS
from training.monitoring_config import THRESHOLDS, Thresholds, worst

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-monitor")
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "credit-monitor",
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "LoanDefault",
)
PREFIX = "reports/monitoring"
LATEST = "latest.json"
REPORT_VERSION = 1
COUNTED = (
    "volumes",
    "drift",
    "performance",
    "calibration_by_grade",
    "calibration_by_age_band",
    "fairness",
    "versions",
)
"""The measures that make the overall status (maturity says how final they are; the shadow informs)."""
HEADLINE = {
    "volumes": "Decision volumes and mix",
    "drift": "Population stability (score and inputs)",
    "maturity": "Outcome maturity",
    "performance": "Discrimination (AUC, Gini)",
    "calibration_by_grade": "Observed vs predicted default rate, by grade",
    "calibration_by_age_band": "Observed vs predicted default rate, by age band",
    "fairness": "Approval rate by age band (four-fifths rule)",
    "shadow": "Shadow challenger against the champion",
    "versions": "Model and policy versions",
}


@dataclass(frozen=True)
class Champion:
    """What the report needs of the champion: its version and its manifest."""

    version: str | None
    manifest: Manifest | None


def as_of_for(day: date) -> datetime:
    """The end of ``day`` (UTC): the report of that day sees decisions made before it."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def visible(records: Sequence[Mapping[str, Any]], day: date) -> list[Mapping[str, Any]]:
    """The records the report of ``day`` sees: those with a readable time before its end."""
    as_of = as_of_for(day)
    return [r for r in records if (m := measures.created(r)) is not None and m < as_of]


def build(
    records: Sequence[Mapping[str, Any]],
    champion: Champion,
    day: date,
    *,
    shadow: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    t: Thresholds = THRESHOLDS,
    labelled: Sequence[Mapping[str, Any]] = (),
    read_from: datetime | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict: every measure with its status, and the overall status.

    ``records``: the decisions (all of them locally; deployed, those made since ``read_from``).
    ``labelled``: decisions with an outcome read apart, of any age; the outcome measures use them
    with ``records``, the rest (volumes, drift, fairness, versions) only ``records``.
    """
    as_of = as_of_for(day)
    seen = visible(records, day)
    known = labelled_decisions.joined(seen, visible(labelled, day))
    recent = [r for r in seen if measures.created(r) >= as_of - timedelta(days=t.drift_window_days)]
    manifest = champion.manifest
    by_grade = outcomes.calibration(known, as_of, lambda r: r.get("risk_grade"), GRADES, t)
    bands = [label for label, _ in AGE_BANDS]
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "date": day.isoformat(),
        "generated_at": _iso(generated_at or datetime.now(UTC)),
        "as_of": _iso(as_of),
        "champion": {
            "model_version": champion.version,
            "created_at": _iso(manifest.created_at) if manifest else None,
        },
        "decisions": len(seen),
        "thresholds": asdict(t),
        "volumes": measures.volumes(seen, as_of, t),
        "drift": _drift(recent, champion, t),
        "maturity": outcomes.maturity(known, as_of, t, read_from),
        "performance": outcomes.performance(known, as_of, t),
        "calibration_by_grade": by_grade,
        "calibration_by_age_band": outcomes.calibration(known, as_of, measures.age_band, bands, t),
        "fairness": measures.fairness_over_time(seen, t),
        "shadow": measures.shadow_summary(shadow, t),
        "versions": measures.versions(seen, champion.version),
    }
    report["status"] = worst([report[name]["status"] for name in COUNTED])
    report["headline"] = headline(report)
    return report


def _drift(records: Sequence[Mapping[str, Any]], champion: Champion, t: Thresholds) -> dict[str, Any]:
    if champion.manifest is None:
        return {
            "n": len(records),
            "error": "no champion manifest: nothing to compare with",
            "status": "insufficient",
        }
    manifest = champion.manifest
    found = measures.drift(
        records, manifest.reference_distributions, champion.version, manifest.score_scale, t
    )
    return {**found, "window_days": t.drift_window_days}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def headline(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per measure: its status and what it says, in words."""
    lines = []
    for name, label in HEADLINE.items():
        measure = report.get(name)
        if measure is None:
            lines.append(
                {
                    "measure": name,
                    "label": label,
                    "status": "insufficient",
                    "summary": "no shadow challenger ran",
                }
            )
            continue
        lines.append(
            {
                "measure": name,
                "label": label,
                "status": measure["status"],
                "summary": summary(name, measure, report),
            }
        )
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(name: str, m: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """The plain-words line of a measure in the headline table."""
    if name == "volumes":
        if not m["weeks"]:
            return "no decisions"
        if m["latest_complete_week"] is None:
            return f"{sum(w['n'] for w in m['weeks'])} decisions, no complete week yet"
        last = next(w for w in m["weeks"] if w["week"] == m["latest_complete_week"])
        change = m["latest_approve_share_change"]
        if change is None:
            return (
                f"{last['n']} decisions in {last['week']}, {_pct(last['approve_share'])} approved:"
                f" too few (under {report['thresholds']['min_week_decisions']}) or no earlier week to compare"
            )
        return (
            f"{last['n']} decisions in {last['week']}, {_pct(last['approve_share'])} approved,"
            f" {100 * change:+.1f} points against the earlier weeks"
        )
    if name == "drift":
        if "error" in m:
            return m["error"]
        psis = {k: v["psi"] for k, v in {**m["scores"], **m["inputs"]}.items() if v["psi"] is not None}
        if not psis:
            return f"{m['n']} decisions in the last {m['window_days']} days: too few for PSI"
        top = max(psis, key=psis.__getitem__)
        return (
            f"largest PSI {psis[top]:.3f} ({top}), score PSI {_num(m['scores'].get('score', {}).get('psi'))}"
        )
    if name == "maturity":
        return (
            f"{m['with_outcome']} of {m['decisions']} decisions have an outcome;"
            f" {m['mature_outcomes']} are mature"
            f" (decided at least {m['performance_window_days']} days ago)"
        )
    provisional = " PROVISIONAL (immature outcomes)" if m.get("maturity") == "immature" else ""
    if name == "performance":
        if m["auc"] is None:
            return f"{m['n']} outcomes, {m['defaults']} defaults: too few for an AUC"
        lo, hi = m["auc_interval"]
        return (
            f"AUC {m['auc']:.3f} ({_num(lo)}-{_num(hi)}), Gini {m['gini']:.3f} on {m['n']} loans{provisional}"
        )
    if name.startswith("calibration"):
        tested = [g for g in m["groups"] if g["p_value"] is not None]
        if not tested:
            return "too few outcomes per group for a test"
        low = min(tested, key=lambda g: g["p_value"])
        return (
            f"lowest p-value {low['p_value']:.3f} ({low['group']}: observed {_pct(low['observed_rate'])},"
            f" predicted {_pct(low['predicted_rate'])}){provisional}"
        )
    if name == "fairness":
        overall = m["overall"]
        return f"lowest/highest approval rate {_num(overall['ratio'])} (floor {m['floor']:.2f})"
    if name == "shadow":
        if "error" in m:
            return m["error"]
        return (
            f"{m['shadow_version']}: {m['n']} decisions scored by both,"
            f" agreement {_pct(m['agreement'])}, swaps {_pct(m['swap_share'])}"
        )
    if name == "versions":
        if not m["weeks"]:
            return "no decisions"
        last = m["weeks"][-1]
        models = ", ".join(sorted(last["model_versions"]))
        return f"{last['week']}: models {models}; policies {', '.join(sorted(last['policy_versions']))}"
    return ""


# ---------------------------------------------------------------- writing


def keys(day: date) -> dict[str, str]:
    base = f"{PREFIX}/{day.isoformat()}"
    return {"json": f"{base}/report.json", "html": f"{base}/report.html", "latest": f"{PREFIX}/{LATEST}"}


def pointer(report: Mapping[str, Any], html: str, json_key: str) -> dict[str, Any]:
    return {
        "date": report["date"],
        "generated_at": report["generated_at"],
        "html": html,
        "json": json_key,
        "status": report["status"],
    }


def rendered(report: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(report.json, report.html) bytes."""
    from training.monitoring_html import render
    from training.monitoring_plots import plots

    return json.dumps(report, indent=2, allow_nan=False).encode(), render(report, plots(report)).encode()


def write_local(report: Mapping[str, Any], reports_dir: Path) -> Path:
    """``<reports_dir>/monitoring/<date>/report.{json,html}``, then ``monitoring/latest.json``."""
    day = date.fromisoformat(report["date"])
    names = {k: v.removeprefix("reports/") for k, v in keys(day).items()}
    body_json, body_html = rendered(report)
    for kind, body in (("json", body_json), ("html", body_html)):
        path = reports_dir / names[kind]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    latest = reports_dir / names["latest"]
    latest.write_text(json.dumps(pointer(report, names["html"], names["json"]), indent=2))
    return latest


def write_s3(s3: Any, bucket: str, report: Mapping[str, Any]) -> dict[str, str]:
    """The two files, then (only if both were written) the pointer."""
    found = keys(date.fromisoformat(report["date"]))
    body_json, body_html = rendered(report)
    s3.put_object(Bucket=bucket, Key=found["json"], Body=body_json, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=found["html"], Body=body_html, ContentType="text/html; charset=utf-8")
    latest = json.dumps(pointer(report, found["html"], found["json"]), indent=2).encode()
    s3.put_object(Bucket=bucket, Key=found["latest"], Body=latest, ContentType="application/json")
    return found


# ---------------------------------------------------------------- reading


def champion_from_file(manifest_path: Path) -> Champion:
    manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    return Champion(manifest.model_version, manifest)


def champion_from_s3(s3: Any, bucket: str) -> Champion:
    """The champion pointer and its manifest (checked against the pointer's manifest_sha256).

    The model itself is not loaded: the report needs the reference distributions only.
    """
    from credit_api import registry

    current = registry.read_champion(s3, bucket)
    if current.pointer is None:
        return Champion(None, None)
    raw = s3.get_object(Bucket=bucket, Key=f"{current.pointer['key']}/{MANIFEST_FILE}")["Body"].read()
    expected = current.pointer.get("manifest_sha256")
    if expected and sha256(raw) != expected:
        raise RuntimeError(f"{current.pointer['key']}/{MANIFEST_FILE} does not match the champion pointer")
    return Champion(current.version, Manifest.model_validate_json(raw))


def local_shadow(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The shadow comparison from the records alone (None when no record carries a shadow score)."""
    from credit_api import shadow

    if shadow.latest_shadow_version(records) is None:
        return None
    return shadow.compare(records)


def run_aws(
    s3: Any, dynamodb: Any, bucket: str, table: str, day: date
) -> tuple[dict[str, Any], dict[str, str]]:
    """Read the table and the champion, build the report and write it to the bucket.

    No Scan: the decisions of the last ``decisions_read_days`` through the day index, and the
    labelled ones of any age brought up to date incrementally (:mod:`training.labelled_decisions`,
    the snapshot the retrain shares). What was read goes into the report (``labelled_read``).
    """
    from credit_api.decision_reads import window
    from credit_api.shadow import report_comparison

    as_of = as_of_for(day)
    read_from = as_of - timedelta(days=THRESHOLDS.decisions_read_days)
    records = visible(window(dynamodb, table, read_from, as_of), day)
    labelled = labelled_decisions.refresh(s3, dynamodb, bucket, table)
    champion = champion_from_s3(s3, bucket)
    known = labelled_decisions.joined(records, labelled.records)
    comparison = report_comparison(s3, bucket, known) or local_shadow(known)
    report = build(records, champion, day, shadow=comparison, labelled=labelled.records, read_from=read_from)
    report["labelled_read"] = labelled.summary()
    logger.info("monitoring reads", extra={"decisions": len(records), **labelled.summary()})
    return report, write_s3(s3, bucket, report)


def drift_psi(report: Mapping[str, Any]) -> dict[str, float]:
    """PSI of the score and of each input, where the report has one (enough recent decisions)."""
    drift = report.get("drift") or {}
    found = {**(drift.get("scores") or {}), **(drift.get("inputs") or {})}
    return {
        name: m["psi"] for name, m in found.items() if isinstance(m, Mapping) and m.get("psi") is not None
    }


def record_metrics(report: Mapping[str, Any]) -> None:
    """The day's drift as EMF: ``DriftPsiMax`` feeds the template's DriftAlarm, ``DriftPsi`` per input.

    The alarm treats a missing ``DriftPsiMax`` as breaching, so a day without one pages: the
    function failed (MonitorFailedAlarm too), or fewer recent decisions than
    ``min_drift_sample`` left drift unmeasured, which is not "stable" either. Emitted whether or
    not a retrain runs that day; the retrain's own figure (service ``credit-retrain``) goes
    into its report.
    """
    psi = drift_psi(report)
    metrics.add_metric(name="MonitoringReports", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="MonitoringDecisions", unit=MetricUnit.Count, value=report.get("decisions") or 0)
    if psi:
        metrics.add_metric(name="DriftPsiMax", unit=MetricUnit.NoUnit, value=max(psi.values()))
    for name, value in sorted(psi.items()):
        with single_metric(
            name="DriftPsi",
            unit=MetricUnit.NoUnit,
            value=value,
            namespace=metrics.namespace,
            default_dimensions={"service": metrics.service, "input": name},
        ):
            pass


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge scheduled event in (its ``time`` gives the date); the pointer document out."""
    import boto3

    bucket, table = os.environ.get("MODEL_BUCKET"), os.environ.get("DECISIONS_TABLE")
    if not bucket or not table:
        raise ValueError("the monitoring report needs MODEL_BUCKET and DECISIONS_TABLE set")
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    session = boto3.session.Session()
    when = measures.created({"created_at": (event or {}).get("time")}) or datetime.now(UTC)
    report, written = run_aws(
        session.client("s3", endpoint_url=endpoint),
        session.client("dynamodb", endpoint_url=endpoint),
        bucket,
        table,
        when.date(),
    )
    record_metrics(report)
    logger.info("monitoring report written", extra={"date": report["date"], "status": report["status"]})
    return pointer(report, written["html"], written["json"])
