"""Portfolio scoring: rows per second of one worker, and a projection for 10 million rows.

The worker handler (:func:`credit_api.portfolio.score_handler`) runs in-process on batch
events shaped as the Distributed Map sends them: 1000 rows of ``data/credit.csv`` with every
cell a string, as the CSV ItemReader gives them. Its part goes to an in-memory stand-in for
S3 (the PUT is one network round trip per batch in Lambda, not this code's work). The
projection for 10 million rows is arithmetic on the measured median batch time and the
definition's MaxConcurrency, labelled as such: it leaves out cold starts, S3 and Step
Functions' own scheduling, and the assembler.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = ROOT / "infra" / "statemachine" / "portfolio.asl.json"
PROJECTED_ROWS = 10_000_000


class _Missing(Exception):
    """What botocore raises for an absent key, as far as ``credit_api.aws.error_code`` looks."""

    response: ClassVar[dict[str, Any]] = {"Error": {"Code": "NoSuchKey"}}


class _Bucket:
    """An in-memory bucket for the calls the worker and the assembler make: the benchmark
    measures their work, not the network's."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.bytes_written = 0

    def put_object(self, **params: Any) -> dict[str, Any]:
        body = params["Body"]
        data = body if isinstance(body, bytes) else body.read()
        self.objects[params["Key"]] = data
        self.bytes_written += len(data)
        return {"ETag": '"bench"'}

    def get_object(self, **params: Any) -> dict[str, Any]:
        if params["Key"] not in self.objects:
            raise _Missing(params["Key"])
        return {"Body": io.BytesIO(self.objects[params["Key"]])}

    def get_paginator(self, _: str) -> Any:
        bucket = self

        class Pages:
            def paginate(self, **params: Any) -> list[dict[str, Any]]:
                keys = [k for k in sorted(bucket.objects) if k.startswith(params["Prefix"])]
                return [{"Contents": [{"Key": k} for k in keys]}]

        return Pages()


def _map_settings() -> tuple[int, int]:
    (state,) = [s for s in json.loads(DEFINITION.read_text())["States"].values() if s["Type"] == "Map"]
    return state["ItemBatcher"]["MaxItemsPerBatch"], state["MaxConcurrency"]


def _event(batch_size: int) -> dict[str, Any]:
    with (ROOT / "data" / "credit.csv").open(newline="") as handle:
        rows = [{k: v for k, v in row.items() if k != "default"} for row in csv.DictReader(handle)]
    items = [{"index": i, "values": rows[i % len(rows)]} for i in range(batch_size)]
    source = {"bucket": "bench", "key": "batch/incoming/bench.csv", "etag": "0" * 32}
    return {"Items": items, "BatchInput": source}


def measure(batches: int = 30) -> dict[str, Any]:
    """Median and p90 time of one worker call on a full batch; rows/s; the 10M-row projection."""
    from credit_api import file_runs, portfolio
    from credit_api.observability import logger
    from credit_api.rows import applicant_or_errors

    batch_size, concurrency = _map_settings()
    event = _event(batch_size)
    bucket = _Bucket()
    level = logger.log_level
    logger.setLevel("WARNING")
    real_s3 = file_runs.s3_client
    file_runs.s3_client = lambda: bucket  # type: ignore[assignment]
    try:
        for _ in range(3):  # model loaded, caches warm
            portfolio.score_handler(event, None)
        times = []
        for _ in range(batches):
            started = time.perf_counter()
            portfolio.score_handler(event, None)
            times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for item in event["Items"]:
            applicant_or_errors(item["values"])
        validation_ms = (time.perf_counter() - started) * 1000
    finally:
        file_runs.s3_client = real_s3
        logger.setLevel(level)
    part_kb = bucket.bytes_written / (batches + 3) / 1024
    assemble_ms, assembled_rows = _assemble(event, bucket)
    median = statistics.median(times)
    waves = math.ceil(math.ceil(PROJECTED_ROWS / batch_size) / concurrency)
    return {
        "batch_size": batch_size,
        "max_concurrency": concurrency,
        "batches": batches,
        "batch_ms_p50": median,
        "batch_ms_p90": statistics.quantiles(times, n=10)[-1],
        "validation_ms": validation_ms,
        "rows_per_second": batch_size / (median / 1000),
        "part_kb": part_kb,
        "projected_waves": waves,
        "projected_minutes": waves * median / 1000 / 60,
        "assembled_rows": assembled_rows,
        "assemble_ms": assemble_ms,
        "assembled_rows_per_second": assembled_rows / (assemble_ms / 1000),
        "projected_assemble_minutes": PROJECTED_ROWS / (assembled_rows / (assemble_ms / 1000)) / 60,
    }


def _assemble(event: dict[str, Any], bucket: _Bucket, batches: int = 20) -> tuple[float, int]:
    """The assembler on ``batches`` parts as the worker wrote them (and the input they came from)."""
    from credit_api import portfolio
    from credit_api.file_runs import Batch, Source, write_part

    store = portfolio._store()
    rows = [item["values"] for item in event["Items"]] * batches
    text = io.StringIO()
    writer = csv.DictWriter(text, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    source = Source.of(event["BatchInput"])
    bucket.objects = {source.key: text.getvalue().encode()}
    size = len(event["Items"])
    for start in range(0, len(rows), size):
        items = [{"index": start + i, "values": r} for i, r in enumerate(rows[start : start + size])]
        batch = Batch.of({"Items": items, "BatchInput": event["BatchInput"]})
        write_part(bucket, portfolio.PORTFOLIO, batch, portfolio.score(batch, store))
    started = time.perf_counter()
    summary = portfolio.assemble(portfolio.PORTFOLIO, bucket, event["BatchInput"])
    return (time.perf_counter() - started) * 1000, summary["rows"]


def section(result: dict[str, Any]) -> str:
    """The markdown section for BENCHMARKS.md."""
    r = result
    return "\n".join(
        [
            "## Portfolio scoring (one worker)",
            "",
            f"The worker handler in-process on batches of {r['batch_size']} rows of `data/credit.csv`"
            f" (cells as strings, as the CSV ItemReader gives them), {r['batches']} batches after 3 warm-up"
            " ones; its part kept in memory instead of S3. The assembler then joins"
            f" {r['assembled_rows']:,} rows' parts, in memory too.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| one batch, p50 | {r['batch_ms_p50']:.1f} ms |",
            f"| one batch, p90 | {r['batch_ms_p90']:.1f} ms |",
            f"| of which schema validation of the rows | {r['validation_ms']:.1f} ms |",
            f"| rows per second, one worker | {r['rows_per_second']:,.0f} |",
            f"| part written per batch | {r['part_kb']:.0f} kB |",
            f"| **projection**: 10 million rows at MaxConcurrency {r['max_concurrency']} | "
            f"{r['projected_waves']} waves of {r['max_concurrency']} batches, about"
            f" {r['projected_minutes']:.1f} min of scoring |",
            f"| assembler, {r['assembled_rows']:,} rows | {r['assemble_ms']:.0f} ms"
            f" ({r['assembled_rows_per_second']:,.0f} rows/s) |",
            f"| **projection**: assembling 10 million rows | about {r['projected_assemble_minutes']:.1f} min"
            " (its Lambda timeout is 15 min) |",
            "",
            "Both projections are arithmetic on the measured times (waves x p50 batch time; rows / the"
            " assembler's rows per second), not measurements: they leave out Lambda cold starts (one per"
            " concurrent worker), S3 (one PUT per part; the assembler's GETs of every part and PUTs of the"
            " files, gigabytes at 10 million rows) and Step Functions' scheduling of child executions.",
            "",
        ]
    )


if __name__ == "__main__":
    print(section(measure()))
