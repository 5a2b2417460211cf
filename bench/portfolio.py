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
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = ROOT / "infra" / "statemachine" / "portfolio.asl.json"
PROJECTED_ROWS = 10_000_000


class _Bucket:
    """Keeps what the worker writes in memory: the benchmark measures the worker, not the network."""

    def __init__(self) -> None:
        self.bytes_written = 0

    def put_object(self, **params: Any) -> dict[str, Any]:
        self.bytes_written += len(params["Body"])
        return {"ETag": '"bench"'}


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
    from credit_api import portfolio
    from credit_api.observability import logger
    from credit_api.rows import applicant_or_errors

    batch_size, concurrency = _map_settings()
    event = _event(batch_size)
    bucket = _Bucket()
    level = logger.log_level
    logger.setLevel("WARNING")
    real_s3 = portfolio._s3
    portfolio._s3 = lambda: bucket  # type: ignore[assignment]
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
        portfolio._s3 = real_s3
        logger.setLevel(level)
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
        "part_kb": bucket.bytes_written / (batches + 3) / 1024,
        "projected_waves": waves,
        "projected_minutes": waves * median / 1000 / 60,
    }


def section(result: dict[str, Any]) -> str:
    """The markdown section for BENCHMARKS.md."""
    r = result
    return "\n".join(
        [
            "## Portfolio scoring (one worker)",
            "",
            f"The worker handler in-process on batches of {r['batch_size']} rows of `data/credit.csv` (cells as"
            f" strings, as the CSV ItemReader gives them), {r['batches']} batches after 3 warm-up ones; its"
            " part kept in memory instead of S3.",
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
            "",
            "The projection is arithmetic (waves x measured p50 batch time), not a measurement: it leaves out"
            " Lambda cold starts (one per concurrent worker), the S3 PUT of each part, Step Functions'"
            " scheduling of child executions and the assembler's pass over the parts.",
            "",
        ]
    )


if __name__ == "__main__":
    print(section(measure()))
