"""Portfolio scoring: a CSV of applicants under ``batch/incoming/`` scored in batches of ~1000.

The Step Functions state machine (``infra/statemachine/portfolio.asl.json``) reads the file
with a Distributed Map and calls :func:`score_handler` once per batch, then
:func:`assemble_handler` once to write ``batch/scored/<name>/<run>/scored.csv``, ``errors.csv``
and ``summary.json`` (see :mod:`credit_api.file_runs`).

The scoring is the API's: each row is validated by the applicant schema
(:func:`credit_api.rows.applicant_or_errors`) and a batch is assessed in one model run by
:func:`credit_api.underwriting.assess` under the served model and policy, exactly as
``POST /predict/batch`` does. Portfolio rows are existing loans, not credit applications, so
nothing is written to the decision log: no decision ids, no records.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from credit_api import file_runs
from credit_api.file_runs import ROW_COLUMN, Batch, Flow, Part, assemble, error_rows, write_part
from credit_api.model_store import ModelStore
from credit_api.observability import count, logger, metrics
from credit_api.rows import applicant_or_errors
from credit_api.underwriting import assess

SCORE_COLUMNS = (
    "probability_of_default",
    "decision",
    "score",
    "risk_grade",
    "reasons",
    "model_version",
    "policy_version",
)
"""What the scored file adds to each input row."""

PORTFOLIO = Flow(
    name="portfolio",
    incoming="batch/incoming/",
    results="batch/results/",
    output="batch/scored/",
    results_file="scored.csv",
    result_columns=SCORE_COLUMNS,
    counted="decision",
)


@cache
def _store() -> ModelStore:
    """One model store per container, refreshed like the API's (settings read once)."""
    return ModelStore(file_runs.settings())


def score(batch: Batch, store: ModelStore) -> Part:
    """Each row's scores, or its field errors; one model run for the valid rows."""
    part = Part(rows=[item.row for item in batch.items])
    valid: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    for item in batch.items:
        applicant, details = applicant_or_errors(item.values)
        if applicant is None:
            part.errors.extend(error_rows(item.row, details))
        else:
            valid.append((item.row, item.values, applicant))
    if valid:
        model, policy = store.served()
        assessments = assess(model, [applicant for _, _, applicant in valid], policy)
        for (row, values, _), assessment in zip(valid, assessments, strict=True):
            part.results.append(_scored(row, values, assessment, model.version, policy.version))
    return part


def _scored(
    row: int, values: dict[str, str], assessment: dict[str, Any], model_version: str, policy_version: str
) -> dict[str, Any]:
    """One scored row: its cells and what the API would answer for it (reasons as one text)."""
    answered = {k: assessment[k] for k in ("probability_of_default", "decision", "score", "risk_grade")}
    reasons = "; ".join(r["message"] for r in assessment["reasons"])
    return {
        ROW_COLUMN: row,
        "values": values,
        **answered,
        "reasons": reasons,
        "model_version": model_version,
        "policy_version": policy_version,
    }


@metrics.log_metrics
def score_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Distributed Map's worker: one batch in, one part written, its counts returned."""
    batch = Batch.of(event)
    written = write_part(file_runs.s3_client(), PORTFOLIO, batch, score(batch, _store()))
    count("PortfolioRowsScored", written["results"])
    count("PortfolioRowsInvalid", written["error_rows"])
    logger.info("portfolio batch scored", extra={"run_id": batch.source.run_id, **written})
    return written


@metrics.log_metrics
def assemble_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The last step: one scored file, one errors file and the summary (the event's detail)."""
    summary = assemble(PORTFOLIO, file_runs.s3_client(), event)
    count("PortfolioFilesAssembled")
    logger.info("portfolio assembled", extra={"run_id": summary["run_id"], "rows": summary["rows"]})
    return summary
