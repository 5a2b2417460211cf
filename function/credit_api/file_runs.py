"""One CSV file dropped in the bucket, processed in batches by a Step Functions Distributed Map.

Shared by portfolio scoring (:mod:`credit_api.portfolio`) and outcome files
(:mod:`credit_api.outcome_files`). Each batch worker gets the batch event Step Functions sends,
``{"Items": [{"index": i, "values": {column: cell}}], "BatchInput": {"bucket", "key", "etag"}}``,
and writes its rows' results and errors as one *part* under the flow's results prefix. The
assembler then joins every part into one results file, one errors file and a summary.

Why parts, not the Map's own ResultWriter files: those hold each batch's output inside a
256 KB state payload per batch; a part is plain S3 and the assembler reads one at a time.

Every key is derived from the input's key and ETag (:class:`Source`), so re-running the same
file writes the same parts again (identical content) and the assembler, finding the summary
already there, returns it as it is: a re-run never changes a result. The assembler checks that
every input row is accounted for exactly once (results rows + error rows = input rows) and
fails the run otherwise; no row is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from credit_api import aws
from credit_api.aws import S3_MISSING_CODES, error_code
from credit_api.s3_writes import put_once
from credit_api.settings import Settings

ROW_COLUMN = "row"
"""Row number in every output file: 1 is the first line after the header, as Step Functions'
``$$.Map.Item.Index`` plus one."""
ERROR_COLUMNS = (ROW_COLUMN, "field", "reason")


@cache
def settings() -> Settings:
    """The file-flow functions' settings, read once per container."""
    return Settings.from_env()


@cache
def s3_client() -> Any:
    current = settings()
    return aws.client("s3", current.aws_endpoint_url, current.aws)


class IncompleteRun(Exception):
    """The parts do not account for every input row exactly once: nothing is published."""


@dataclass(frozen=True)
class Flow:
    """Where one kind of file comes in, where its batches' parts go, and where results land."""

    name: str
    incoming: str
    results: str
    output: str
    results_file: str
    result_columns: tuple[str, ...]
    counted: str
    """The result field the summary counts by value ("decision" for a portfolio). The event a
    run ends with is the state machine's (``infra/statemachine/*.asl.json``), not named here."""


@dataclass(frozen=True)
class Source:
    """The input object, pinned by its ETag: the identity of a run."""

    bucket: str
    key: str
    etag: str

    @classmethod
    def of(cls, event: dict[str, Any]) -> Source:
        return cls(str(event["bucket"]), str(event["key"]), str(event["etag"]).strip('"'))

    @property
    def run_id(self) -> str:
        return hashlib.sha256(f"{self.key}\n{self.etag}".encode()).hexdigest()[:16]

    def parts_prefix(self, flow: Flow) -> str:
        return f"{flow.results}{self.run_id}/parts/"

    def part_key(self, flow: Flow, first_row: int) -> str:
        return f"{self.parts_prefix(flow)}{first_row:010d}.json"

    def output_key(self, flow: Flow, name: str) -> str:
        if not self.key.startswith(flow.incoming):
            raise ValueError(f"{self.key!r} is not under {flow.incoming}")
        stem = self.key[len(flow.incoming) :].removesuffix(".csv")
        return f"{flow.output}{stem}/{self.run_id}/{name}"


@dataclass(frozen=True)
class Item:
    row: int
    values: dict[str, str]


@dataclass(frozen=True)
class Batch:
    source: Source
    items: list[Item]

    @classmethod
    def of(cls, event: dict[str, Any]) -> Batch:
        """The batch event Step Functions sends to a Distributed Map's worker (ItemBatcher)."""
        items = [Item(int(i["index"]) + 1, _columns(i["values"])) for i in event["Items"]]
        return cls(Source.of(event["BatchInput"]), items)


def _columns(values: dict[str, str]) -> dict[str, str]:
    """A row's cells by column; a byte-order mark (a spreadsheet's UTF-8 export) is not part of
    the first column's name (the ItemReader keeps it, ``utf-8-sig`` drops it)."""
    return {name.removeprefix("\ufeff"): cell for name, cell in values.items()}


@dataclass
class Part:
    """One batch's results and errors (each with its row), as the worker writes it."""

    rows: list[int]
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def error_rows(row: int, details: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors file's lines for one bad row: one per field, with the API's own message."""
    return [{ROW_COLUMN: row, "field": d["field"], "reason": d["message"]} for d in details]


def write_part(s3: Any, flow: Flow, batch: Batch, part: Part) -> dict[str, Any]:
    """Store the part at its deterministic key; what the worker returns to the Map (small)."""
    key = batch.source.part_key(flow, min(part.rows))
    body = json.dumps(
        {"rows": part.rows, "results": part.results, "errors": part.errors}, separators=(",", ":")
    )
    s3.put_object(Bucket=batch.source.bucket, Key=key, Body=body.encode(), ContentType="application/json")
    failed = {e[ROW_COLUMN] for e in part.errors}
    return {"part": key, "rows": len(part.rows), "results": len(part.results), "error_rows": len(failed)}


def _input_rows(s3: Any, source: Source) -> tuple[list[str], int]:
    """(header, number of data rows) of the input, read as the Map's CSV ItemReader reads it.

    ``IfMatch`` pins the ETag: a file replaced during the run fails it rather than mixing two files.
    """
    body = s3.get_object(Bucket=source.bucket, Key=source.key, IfMatch=f'"{source.etag}"')["Body"]
    reader = csv.reader(io.TextIOWrapper(body, encoding="utf-8-sig", newline=""))
    header = next(reader, [])
    return header, sum(1 for _ in reader)


def _parts(s3: Any, flow: Flow, source: Source) -> Iterator[dict[str, Any]]:
    """Every part of the run, in order of their first row, one in memory at a time."""
    paginator = s3.get_paginator("list_objects_v2")
    keys = [
        item["Key"]
        for page in paginator.paginate(Bucket=source.bucket, Prefix=source.parts_prefix(flow))
        for item in page.get("Contents", [])
    ]
    for key in sorted(keys):
        yield json.loads(s3.get_object(Bucket=source.bucket, Key=key)["Body"].read())


@dataclass
class Tally:
    """What the summary says, gathered while the files are written."""

    total: int
    seen: bytearray = field(init=False)
    results: int = 0
    error_lines: int = 0
    failed_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seen = bytearray(self.total + 1)

    def mark(self, row: int) -> None:
        if not 1 <= row <= self.total:
            raise IncompleteRun(f"row {row} is outside the input's {self.total} rows")
        if self.seen[row]:
            raise IncompleteRun(f"row {row} was answered twice")
        self.seen[row] = 1

    def check(self) -> None:
        missing = self.total - sum(self.seen)
        if missing:
            first = next(r for r in range(1, self.total + 1) if not self.seen[r])
            raise IncompleteRun(
                f"{missing} of {self.total} rows have no result and no error (first: row {first})"
            )


def _checked(part: dict[str, Any]) -> set[int]:
    """The part's rows with errors, once it is shown to hold each of its rows exactly once."""
    failed = {e[ROW_COLUMN] for e in part["errors"]}
    answered = {r[ROW_COLUMN] for r in part["results"]}
    if answered & failed or answered | failed != set(part["rows"]) or len(answered) != len(part["results"]):
        raise IncompleteRun(f"a part's results and errors do not match its rows {part['rows'][:3]}...")
    return failed


def _count(tally: Tally, flow: Flow, result: dict[str, Any]) -> None:
    value = str(result[flow.counted])
    tally.counts[value] = tally.counts.get(value, 0) + 1
    versions = (result.get("model_version") or "", result.get("policy_version") or "")
    tally.versions[versions] = tally.versions.get(versions, 0) + 1


def _write_outputs(
    flow: Flow, header: list[str], parts: Iterator[dict[str, Any]], tally: Tally, results: Any, errors: Any
) -> None:
    """Stream every part into the results and errors files, checking each row is there once."""
    results_writer = csv.writer(results, lineterminator="\n")
    errors_writer = csv.writer(errors, lineterminator="\n")
    results_writer.writerow([ROW_COLUMN, *header, *flow.result_columns])
    errors_writer.writerow(ERROR_COLUMNS)
    for part in parts:
        failed = _checked(part)
        for row in part["rows"]:
            tally.mark(row)
        for result in part["results"]:
            inputs = (result["values"].get(c, "") for c in header)
            results_writer.writerow([result[ROW_COLUMN], *inputs, *(result[c] for c in flow.result_columns)])
            _count(tally, flow, result)
        errors_writer.writerows([error[c] for c in ERROR_COLUMNS] for error in part["errors"])
        tally.results += len(part["results"])
        tally.error_lines += len(part["errors"])
        tally.failed_rows += len(failed)
    tally.check()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds_since(started_at: str | None, clock: Callable[[], float]) -> float | None:
    if not started_at:
        return None
    started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    return round(clock() - started.timestamp(), 3)


def assemble(
    flow: Flow, s3: Any, event: dict[str, Any], clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Join the run's parts into the results and errors files and write the summary, once.

    The summary is written last and only if absent: its presence means the run is complete. A
    re-run finds it and returns it unchanged (with ``"rerun": true`` in the answer only).
    """
    source = Source.of(event)
    summary_key = source.output_key(flow, "summary.json")
    existing = _stored(s3, source.bucket, summary_key)
    if existing is not None:
        return {**existing, "rerun": True}
    header, total = _input_rows(s3, source)
    tally = Tally(total)
    files = {
        "results": source.output_key(flow, flow.results_file),
        "errors": source.output_key(flow, "errors.csv"),
    }
    with tempfile.TemporaryFile("w+b") as results, tempfile.TemporaryFile("w+b") as errors:
        text = [io.TextIOWrapper(f, encoding="utf-8", newline="") for f in (results, errors)]
        _write_outputs(flow, header, _parts(s3, flow, source), tally, *text)
        for handle, key in zip(text, files.values(), strict=True):
            handle.flush()
            handle.buffer.seek(0)
            s3.put_object(Bucket=source.bucket, Key=key, Body=handle.buffer, ContentType="text/csv")
            handle.detach()
    summary = _summary(flow, source, tally, files, event.get("started_at"), clock)
    body = json.dumps(summary, indent=2).encode()
    stored = put_once(s3, source.bucket, summary_key, body, "application/json")
    return {**(json.loads(stored) if stored else summary), "rerun": stored is not None}


def _stored(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:
        if error_code(exc) in S3_MISSING_CODES:
            return None
        raise


def _summary(
    flow: Flow,
    source: Source,
    tally: Tally,
    files: dict[str, str],
    started_at: str | None,
    clock: Callable[[], float],
) -> dict[str, Any]:
    return {
        "flow": flow.name,
        "source": {"bucket": source.bucket, "key": source.key, "etag": source.etag},
        "run_id": source.run_id,
        "rows": tally.total,
        "results": tally.results,
        "error_rows": tally.failed_rows,
        "error_lines": tally.error_lines,
        f"by_{flow.counted}": dict(sorted(tally.counts.items())),
        "versions": [
            {"model_version": m, "policy_version": p, "rows": n}
            for (m, p), n in sorted(tally.versions.items())
            if m or p
        ],
        "files": files,
        "started_at": started_at,
        "finished_at": _now(),
        "duration_seconds": _seconds_since(started_at, clock),
    }
