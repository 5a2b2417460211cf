"""Portfolio and outcome-file workers and the assembler, on real-shaped batch events (events/).

The flow through the state machine is in tests/stack/test_portfolio_flow.py; here each handler
is checked on its own: the worker scores as ``POST /predict/batch`` does and lists bad rows by
row, field and reason; the assembler publishes only when every row is accounted for, once.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from credit_api import file_runs, outcome_files, portfolio
from credit_api.decision_log import SqliteDecisionLog
from credit_api.file_runs import Batch, IncompleteRun, Source
from credit_api.model_store import ModelStore
from credit_api.rows import applicant_or_errors
from credit_api.service import Call, DecisionService
from credit_api.settings import Settings
from fastapi.testclient import TestClient

from tests.function.conftest import BUCKET
from tests.support import LambdaContext, load_event


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _read_csv(s3: Any, key: str) -> list[dict[str, str]]:
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(text)))


def _dropped(s3: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Put the batch's rows in the bucket as the file they came from; the event with its ETag."""
    key = event["BatchInput"]["key"]
    head = s3.put_object(Bucket=BUCKET, Key=key, Body=_csv([i["values"] for i in event["Items"]]))
    source = {"bucket": BUCKET, "key": key, "etag": head["ETag"].strip('"')}
    return {**event, "BatchInput": source}


@pytest.fixture
def handlers(s3: Any, monkeypatch: pytest.MonkeyPatch, sqlite_log: SqliteDecisionLog) -> DecisionService:
    """The handlers' S3 client is moto's; the outcome worker's service logs to SQLite."""
    service = DecisionService(ModelStore(Settings()), sqlite_log, readers={outcome_files.FILE_CALLER})
    monkeypatch.setattr(file_runs, "s3_client", lambda: s3)
    monkeypatch.setattr(portfolio, "_store", lambda: ModelStore(Settings()))
    monkeypatch.setattr(outcome_files, "_service", lambda: service)
    return service


def test_a_batch_is_scored_as_post_predict_batch_scores_it(client: TestClient) -> None:
    event = load_event("portfolio_batch")
    part = portfolio.score(Batch.of(event), ModelStore(Settings()))
    assert part.rows == [1, 2, 3]  # $$.Map.Item.Index 0, 1, 2: rows after the header, from 1
    applicants = [applicant_or_errors(item["values"])[0] for item in event["Items"][:2]]
    answer = client.post("/predict/batch", json={"applicants": applicants})
    assert answer.status_code == 200
    for result, api in zip(part.results, answer.json()["results"], strict=True):
        for field in ("probability_of_default", "decision", "score", "risk_grade", "model_version"):
            assert result[field] == api[field], field
        assert result["policy_version"] == api["policy_version"]
        assert result["reasons"] == "; ".join(r["message"] for r in api["reasons"])
    assert [r["row"] for r in part.results] == [1, 2]
    assert {(e["row"], e["field"]) for e in part.errors} == {(3, "age"), (3, "purpose")}
    age = next(e for e in part.errors if e["field"] == "age")
    assert age["reason"] == "age must be a whole number from 18 to 100 (years); got 17"


def test_a_missing_column_is_an_error_on_every_row_not_a_crash() -> None:
    event = load_event("portfolio_batch")
    for item in event["Items"]:
        item["values"].pop("phone")
    part = portfolio.score(Batch.of(event), ModelStore(Settings()))
    assert part.results == []
    assert {(e["row"], e["field"]) for e in part.errors if e["field"] == "phone"} == {
        (1, "phone"),
        (2, "phone"),
        (3, "phone"),
    }


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_first_column(s3: Any, handlers: Any) -> None:
    event = load_event("portfolio_batch")
    for item in event["Items"]:
        item["values"] = {
            f"\ufeff{k}" if k == "checking_balance" else k: v for k, v in item["values"].items()
        }
    key = event["BatchInput"]["key"]
    body = b"\xef\xbb\xbf" + _csv([i["values"] for i in load_event("portfolio_batch")["Items"]])
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    event["BatchInput"] = {"bucket": BUCKET, "key": key, "etag": etag}
    assert portfolio.score_handler(event, LambdaContext())["results"] == 2
    summary = portfolio.assemble_handler(event["BatchInput"], LambdaContext())
    scored = _read_csv(s3, summary["files"]["results"])
    assert [r["checking_balance"] for r in scored] == ["lt_0", "0_to_200"]


def test_the_assembler_publishes_scored_errors_and_summary_once(s3: Any, handlers: Any) -> None:
    event = _dropped(s3, load_event("portfolio_batch"))
    written = portfolio.score_handler(event, LambdaContext())
    source = Source.of(event["BatchInput"])
    assert written == {
        "part": source.part_key(portfolio.PORTFOLIO, 1),
        "rows": 3,
        "results": 2,
        "error_rows": 1,
    }
    finished = datetime(2026, 12, 3, 7, 0, 30, 500_000, tzinfo=UTC).timestamp()  # 30.377 s after the start
    assembly = {**event["BatchInput"], "started_at": "2026-12-03T07:00:00.123Z"}
    summary = portfolio.assemble(portfolio.PORTFOLIO, s3, assembly, lambda: finished)
    assert summary["rerun"] is False
    assert (summary["rows"], summary["results"], summary["error_rows"], summary["error_lines"]) == (
        3,
        2,
        1,
        2,
    )
    assert sum(summary["by_decision"].values()) == 2
    assert summary["duration_seconds"] == 30.377
    run = source.run_id
    assert summary["files"] == {
        "results": f"batch/scored/portfolio-2026-12/{run}/scored.csv",
        "errors": f"batch/scored/portfolio-2026-12/{run}/errors.csv",
    }
    scored = _read_csv(s3, summary["files"]["results"])
    assert [r["row"] for r in scored] == ["1", "2"]
    assert scored[0]["age"] == "67" and scored[0]["model_version"] == summary["versions"][0]["model_version"]
    errors = _read_csv(s3, summary["files"]["errors"])
    assert [(e["row"], e["field"]) for e in errors] == [("3", "purpose"), ("3", "age")]  # schema order

    stored = s3.get_object(Bucket=BUCKET, Key=f"batch/scored/portfolio-2026-12/{run}/summary.json")
    again = portfolio.assemble_handler(assembly, LambdaContext())  # a re-run: the same, unchanged
    assert again == {**summary, "rerun": True}
    unchanged = s3.head_object(Bucket=BUCKET, Key=f"batch/scored/portfolio-2026-12/{run}/summary.json")
    assert unchanged["ETag"] == stored["ETag"]


def test_the_assembler_refuses_a_run_that_lost_a_row(s3: Any, handlers: Any) -> None:
    event = _dropped(s3, load_event("portfolio_batch"))
    short = {**event, "Items": event["Items"][:2]}  # row 3 never reached a worker
    portfolio.score_handler(short, LambdaContext())
    with pytest.raises(IncompleteRun, match="1 of 3 rows have no result and no error"):
        portfolio.assemble(portfolio.PORTFOLIO, s3, event["BatchInput"])
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="batch/scored/")
    assert listed["KeyCount"] == 0  # nothing published


def test_the_assembler_refuses_a_file_replaced_during_the_run(s3: Any, handlers: Any) -> None:
    event = _dropped(s3, load_event("portfolio_batch"))
    portfolio.score_handler(event, LambdaContext())
    s3.put_object(Bucket=BUCKET, Key=event["BatchInput"]["key"], Body=b"checking_balance\nnone\n")
    with pytest.raises(Exception, match="PreconditionFailed"):
        portfolio.assemble(portfolio.PORTFOLIO, s3, event["BatchInput"])


def _decided(service: DecisionService, n: int) -> list[str]:
    from credit_api.schema import EXAMPLE_APPLICANT

    answers, _ = service.predict_batch([dict(EXAMPLE_APPLICANT)] * n, Call(request_id="r", caller="client-1"))
    return [a["decision_id"] for a in answers]


def test_outcome_rows_are_recorded_once_and_a_conflict_is_an_error_never_an_overwrite(
    s3: Any, handlers: DecisionService, sqlite_log: SqliteDecisionLog
) -> None:
    first, second = _decided(handlers, 2)
    rows = [
        {"decision_id": first, "defaulted": "true", "observed_at": "2026-11-30T12:00:00Z"},
        {
            "decision_id": first,
            "defaulted": "true",
            "observed_at": "2026-11-30T13:00:00+01:00",
        },  # same instant
        {"decision_id": first, "defaulted": "false", "observed_at": "2026-11-30T12:00:00Z"},
        {
            "decision_id": "0b6f7d52-8a3e-4d0f-9a39-2c1f5f0e6a11",
            "defaulted": "false",
            "observed_at": "2026-11-30T12:00:00Z",
        },
        {"decision_id": second, "defaulted": "maybe", "observed_at": "2026-11-30"},
    ]
    event = load_event("outcome_file_batch")
    event["Items"] = [{"index": i, "values": v} for i, v in enumerate(rows)]
    batch = Batch.of(event)
    part = outcome_files.apply(batch, handlers)
    assert [(r["row"], r["status"]) for r in part.results] == [(1, "recorded"), (2, "unchanged")]
    assert [(e["row"], e["field"]) for e in part.errors] == [
        (3, "defaulted"),
        (4, "decision_id"),
        (5, "defaulted"),
        (5, "observed_at"),
    ]
    assert part.errors[0]["reason"].startswith("outcome_already_recorded")
    stored = sqlite_log.get(first)["outcome"]
    again = outcome_files.apply(batch, handlers)  # the same file again: nothing changes
    assert [(r["row"], r["status"]) for r in again.results] == [(1, "unchanged"), (2, "unchanged")]
    assert again.errors == part.errors
    assert sqlite_log.get(first)["outcome"] == stored and stored["defaulted"] is True
    assert sqlite_log.get(second)["outcome"] is None


def test_the_outcome_handlers_write_statuses_errors_and_summary(s3: Any, handlers: DecisionService) -> None:
    (decision_id,) = _decided(handlers, 1)
    event = json.loads(
        json.dumps(load_event("outcome_file_batch")).replace(
            "341a497d-3f46-55c1-8a01-4b6854734f05", decision_id
        )
    )
    event = _dropped(s3, event)
    assert outcome_files.apply_handler(event, LambdaContext())["error_rows"] == 1
    summary = outcome_files.assemble_handler(event["BatchInput"], LambdaContext())
    assert (summary["rows"], summary["results"], summary["error_rows"]) == (2, 1, 1)
    assert summary["by_status"] == {"recorded": 1}
    assert summary["files"]["results"].startswith("outcomes/applied/outcomes-2026-12/")
    applied = _read_csv(s3, summary["files"]["results"])
    assert [(r["row"], r["decision_id"], r["status"]) for r in applied] == [("1", decision_id, "recorded")]
