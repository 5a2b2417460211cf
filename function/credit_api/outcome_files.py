"""Outcome files: a CSV of ``decision_id, defaulted, observed_at`` under ``outcomes/incoming/``.

The state machine (``infra/statemachine/outcomes.asl.json``) batches the file's rows through a
Distributed Map to :func:`apply_handler`, then :func:`assemble_handler` writes
``outcomes/applied/<name>/<run>/applied.csv`` (each row's status), ``errors.csv`` and
``summary.json`` (see :mod:`credit_api.file_runs`).

Each row is validated as ``POST /outcomes`` validates its body (:class:`credit_api.api.OutcomeReport`)
and recorded by the same code, :meth:`credit_api.service.DecisionService.record_outcome`, a
conditional update in the decision log. So the API's rule holds for files too: the same outcome
again is not an error and changes nothing (status ``unchanged``); a different one is an error
row (``outcome_already_recorded``), never an overwrite; an unknown id is an error row.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

from credit_api import file_runs
from credit_api.api import OutcomeReport
from credit_api.decision_log import open_log
from credit_api.errors import NotFound, OutcomeConflict, field_errors
from credit_api.file_runs import ROW_COLUMN, Batch, Flow, Part, assemble, error_rows, write_part
from credit_api.model_store import ModelStore
from credit_api.observability import count, logger, metrics
from credit_api.service import DecisionService

OUTCOME_COLUMNS = ("status",)
"""What the applied file adds to each row (its decision_id is the row's own column)."""
FILE_CALLER = "outcome-file"
"""The caller outcome files record as: a reader of every decision, like the risk team's key."""

OUTCOMES = Flow(
    name="outcomes",
    incoming="outcomes/incoming/",
    results="outcomes/results/",
    output="outcomes/applied/",
    results_file="applied.csv",
    result_columns=OUTCOME_COLUMNS,
    counted="status",
)


@cache
def _service() -> DecisionService:
    """The API's service over the configured decision log; no model is ever loaded by it here."""
    settings = file_runs.settings()
    log = open_log(
        settings.decisions_table, settings.decisions_db, settings.aws_endpoint_url, settings.idempotency_table
    )
    return DecisionService(ModelStore(settings), log, readers={FILE_CALLER})


def _report(values: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the JSON body a client would send: ``true``/``false`` as booleans."""
    defaulted = (values.get("defaulted") or "").strip()
    flag: Any = {"true": True, "false": False}.get(defaulted.lower(), defaulted or None)
    return {
        "decision_id": (values.get("decision_id") or "").strip() or None,
        "defaulted": flag,
        "observed_at": (values.get("observed_at") or "").strip() or None,
    }


def apply(batch: Batch, service: DecisionService) -> Part:
    """Each row's status (``recorded`` or ``unchanged``) or its error; one conditional update a row."""
    part = Part(rows=[item.row for item in batch.items])
    for item in batch.items:
        try:
            report = OutcomeReport.model_validate(_report(item.values))
        except ValidationError as exc:
            raw = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            part.errors.extend(error_rows(item.row, field_errors(raw)))
            continue
        try:
            # Read first only to tell "recorded" from "unchanged"; the rule itself (same again:
            # no change; different: conflict) is the conditional update's, not this read's.
            recorded_before = service.decision(report.decision_id, FILE_CALLER)["outcome"] is not None
            service.record_outcome(
                report.decision_id, report.defaulted, report.observed_at, caller=FILE_CALLER
            )
        except NotFound:
            part.errors.append(
                {ROW_COLUMN: item.row, "field": "decision_id", "reason": "no decision with this id"}
            )
            continue
        except OutcomeConflict as exc:
            part.errors.append(
                {ROW_COLUMN: item.row, "field": "defaulted", "reason": f"{exc.code}: {exc.message}"}
            )
            continue
        status = "unchanged" if recorded_before else "recorded"
        part.results.append({ROW_COLUMN: item.row, "values": item.values, "status": status})
    return part


@metrics.log_metrics
def apply_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Distributed Map's worker for outcome files. A decision log failure fails the batch
    (Step Functions retries it; rows already recorded come back ``unchanged``)."""
    batch = Batch.of(event)
    written = write_part(file_runs.s3_client(), OUTCOMES, batch, apply(batch, _service()))
    count("OutcomeFileRowsRejected", written["error_rows"])
    logger.info("outcome batch applied", extra={"run_id": batch.source.run_id, **written})
    return written


@metrics.log_metrics
def assemble_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    summary = assemble(OUTCOMES, file_runs.s3_client(), event)
    count("OutcomeFilesAssembled")
    logger.info("outcome file assembled", extra={"run_id": summary["run_id"], "rows": summary["rows"]})
    return summary
