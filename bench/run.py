"""Benchmark the function against the obvious build, side by side, and write ``BENCHMARKS.md``.

``credit bench`` (or ``make bench``). Each measurement runs in a fresh interpreter
(:mod:`bench.child`), the two builds interleaved so that load from elsewhere on the machine
falls on both alike:

- cold start: import of the entry module + model load + first invocation (a v1 event through
  the Mangum handler), median of ``--cold-runs`` fresh processes;
- warm latency: the same single-applicant event (review or decline, so with reasons) through
  the handler, p50 and p99;
- batch: 1000 applicants of ``data/credit.csv`` in one v1 event through the handler;
- peak RSS of the function process after all of that;
- shadow scoring: the single-applicant event with and without a shadow challenger loaded,
  in blocks interleaved in one process (:func:`bench.child.shadow`), and the difference.

Decisions are recorded in SQLite, the local store, on tmpfs (``/dev/shm``) so that the numbers
measure the function's own work rather than this machine's disk; one more warm run with the
file on disk shows what commits and checkpoints add. In Lambda, DynamoDB replaces that write
(see the notes written with the table).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess  # nosec B404
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import deployed, labelled_reads, portfolio, retrain_curve
from bench.baseline_model import train
from bench.load import BEGIN, END, write_section

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "function" / "model"
IMPLS = ("function", "baseline")
LABEL = {"function": "this function (onnxruntime)", "baseline": "obvious build (scikit-learn + pandas)"}


def child_env(workdir: Path, pipeline: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODEL_BUCKET", "DECISIONS_TABLE", "AWS_ENDPOINT_URL", "MODEL_DIR")
    }
    env.update(
        {
            "POWERTOOLS_SERVICE_NAME": "credit-api",
            "POWERTOOLS_METRICS_NAMESPACE": "LoanDefault",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "LOG_LEVEL": "INFO",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "bench",
            # A dummy for local moto, not a secret.
            "AWS_SECRET_ACCESS_KEY": "bench",  # nosec B105
            "BASELINE_PIPELINE": str(pipeline),
            "PYTHONDONTWRITEBYTECODE": "0",
        }
    )
    return env


def measure(args: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Run one child in a fresh interpreter with its own decision log under ``workdir``; its result."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    out = run_dir / "result.json"
    env = {**env, "DECISIONS_DB": str(run_dir / "decisions.sqlite3")}
    started = time.perf_counter()
    subprocess.run(  # nosec B603: this interpreter on bench.child
        [sys.executable, "-m", "bench.child", args[0], args[1], str(out), *args[2:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    result["process_ms"] = (time.perf_counter() - started) * 1000
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import onnxruntime
    import sklearn

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": f"onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}",
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def kept_load_section(path: Path) -> str | None:
    """The section ``make load`` wrote (:mod:`bench.load`), kept when this run rewrites the file."""
    text = path.read_text() if path.exists() else ""
    if BEGIN not in text or END not in text:
        return None
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


def kept_section(path: Path, title: str = retrain_curve.SECTION) -> str | None:
    """A section another command wrote, kept likewise: ``make retrain-curve``
    (:mod:`bench.retrain_curve`, an hour to measure), ``make labelled-reads``
    (:mod:`bench.labelled_reads`); this run measures neither."""
    text = path.read_text() if path.exists() else ""
    if title not in text:
        return None
    section = title + text.split(title, 1)[1]
    return section.split("\n## ", 1)[0].rstrip() + "\n"


@dataclass(frozen=True)
class Options:
    """How much to measure, and where the results go."""

    cold_runs: int
    singles: int
    batches: int
    out: Path
    shadow_singles: int = 3000
    """Single requests timed with and without a shadow challenger (alternating)."""


def run(options: Options) -> str:
    """Measure both builds, write ``options.out`` and return what was written."""
    # A tmpfs for the benchmark's own throwaway files.
    shm = Path("/dev/shm")  # nosec B108
    with (
        tempfile.TemporaryDirectory(prefix="credit-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="credit-bench-", dir=shm if shm.is_dir() else None) as fast,
    ):
        disk, workdir = Path(tmp), Path(fast)
        pipeline = disk / "pipeline.joblib"
        estimator, difference = train(MODEL_DIR, pipeline)
        env = child_env(workdir, pipeline)
        info = machine()
        started_at = datetime.now(UTC)

        for impl in IMPLS:  # one untimed run each: bytecode compiled, files in the page cache
            measure(["cold", impl], env, workdir)
        cold: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
        for _ in range(options.cold_runs):
            for impl in IMPLS:
                cold[impl].append(measure(["cold", impl], env, workdir))
                print(f"cold {impl}: {cold[impl][-1]['total_ms']:.0f} ms", file=sys.stderr)
        warm = {
            impl: measure(["warm", impl, str(options.singles), str(options.batches)], env, workdir)
            for impl in IMPLS
        }
        on_disk = measure(["warm", "function", "100", str(options.batches)], env, disk)
        shadowed = measure(["shadow", "function", str(options.shadow_singles)], env, workdir)
        aws = [measure(["aws", "function"], env, workdir) for _ in range(5)]
        info["log_dir"] = "tmpfs (/dev/shm)" if workdir.is_relative_to(shm) else "a temporary directory"
        info["load_after"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())

    write(options, info, started_at, (estimator, difference), cold, warm, on_disk, aws, shadowed)
    # Portfolio scoring: one worker in-process, after the children (bench/portfolio.py).
    written = options.out.read_text().rstrip("\n")
    options.out.write_text(written + "\n\n" + portfolio.section(portfolio.measure()))
    # The deployed configuration's cold start and SnapStart (bench/deployed.py).
    options.out.write_text(options.out.read_text().rstrip("\n") + "\n\n" + deployed.report())
    return options.out.read_text()


def write(
    options: Options,
    info: dict[str, str],
    started_at: datetime,
    baseline: tuple[str, float],
    cold: dict[str, list[dict[str, Any]]],
    warm: dict[str, dict[str, Any]],
    on_disk: dict[str, Any],
    aws: list[dict[str, Any]],
    shadowed: dict[str, Any],
) -> None:
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    med = {
        impl: {k: statistics.median(r[k] for r in cold[impl]) for k in cold[impl][0] if k.endswith("_ms")}
        for impl in IMPLS
    }
    fn, base = med["function"], med["baseline"]
    single = {impl: warm[impl]["single_ms"] for impl in IMPLS}
    batch = {impl: warm[impl]["batch_ms"] for impl in IMPLS}

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    def number(value: float, unit: str) -> str:
        digits = 2 if value < 10 else 1 if value < 100 else 0
        return f"{value:.{digits}f} {unit}"

    def row(name: str, target: str, f: float, b: float, status: str, unit: str = "ms") -> str:
        return f"| {name} | {target} | {number(f, unit)} | {number(b, unit)} | {b / f:.1f}x | {status} |"

    speedup = base["total_ms"] / fn["total_ms"]
    p50 = {impl: percentile(single[impl], 50) for impl in IMPLS}
    p99 = {impl: percentile(single[impl], 99) for impl in IMPLS}
    b50 = {impl: percentile(batch[impl], 50) for impl in IMPLS}
    bmax = {impl: max(batch[impl]) for impl in IMPLS}
    rss = {impl: max(warm[impl]["rss_mb"], *(r["rss_mb"] for r in cold[impl])) for impl in IMPLS}
    boto = statistics.median(r["boto3_clients_ms"] for r in aws)
    xray = statistics.median(r["xray_ms"] for r in aws)
    outcomes = warm["function"]["batch_outcomes"]
    parts = warm["function"]["breakdown"]
    plain50, shadow50 = percentile(shadowed["plain_ms"], 50), percentile(shadowed["shadow_ms"], 50)
    shadow_cost = shadow50 - plain50
    lines = [
        "# Benchmarks",
        "",
        "Written by `credit bench` (`make bench`); rerun it rather than editing this file.",
        "",
        f"- Date: {started_at:%Y-%m-%d %H:%M} UTC",
        f"- Machine: {info['cpu']}, {info['memory']}; {info['os']}; Python {info['python']}",
        f"- Packages: {info['versions']}",
        f"- Load average (1/5/15 min) at start: {info['load']}; at end: {info['load_after']}. The machine was"
        " shared with other work during this run, so absolute numbers carry that noise; both builds were"
        " measured interleaved, so ratios are fairer than absolutes.",
        f"- Model: `{manifest['model_version']}` ({manifest['algorithm']}). The obvious build serves"
        f" {baseline[0]}, a scikit-learn estimator fitted on `data/credit.csv` at benchmark time and"
        " loaded with joblib, with a pandas DataFrame built for every model call; its probabilities differ"
        f" from the ONNX model's by at most {baseline[1]:.1e} on the data set.",
        "",
        "| measure | target | " + " | ".join(LABEL[i] for i in IMPLS) + " | obvious / function | status |",
        "| --- | --- | --- | --- | --- | --- |",
        row(
            f"cold start: import + model load + first invocation (median of {options.cold_runs})",
            "<= 700 ms and >= 3x faster",
            fn["total_ms"],
            base["total_ms"],
            f"{verdict(fn['total_ms'] <= 700)} / {verdict(speedup >= 3)}",
        ),
        row("- of which: import of the entry module", "", fn["import_ms"], base["import_ms"], ""),
        row("- of which: first invocation (loads the model)", "", fn["first_ms"], base["first_ms"], ""),
        row(
            "- whole process, interpreter start to exit (context)",
            "",
            fn["process_ms"],
            base["process_ms"],
            "",
        ),
        row(
            f"warm, one applicant with reasons, p50 ({options.singles} calls)",
            "<= 1.5 ms",
            p50["function"],
            p50["baseline"],
            verdict(p50["function"] <= 1.5),
        ),
        row("warm, one applicant with reasons, p99", "reported", p99["function"], p99["baseline"], ""),
        f"| warm, one applicant, p50 without / with a shadow model ({len(shadowed['plain_ms'])} calls each,"
        f" interleaved) | shadow adds <= 0.2 ms | {number(plain50, 'ms')} / {number(shadow50, 'ms')}"
        f" (+{shadow_cost:.3f} ms) | | | {verdict(shadow_cost <= 0.2)} |",
        row(
            f"batch of 1000 through the handler, p50 ({options.batches} calls)",
            "<= 30 ms",
            b50["function"],
            b50["baseline"],
            verdict(b50["function"] <= 30),
        ),
        row("batch of 1000, slowest call", "reported", bmax["function"], bmax["baseline"], ""),
        f"| batch of 1000, p50, SQLite log on disk instead of tmpfs | reported |"
        f" {number(percentile(on_disk['batch_ms'], 50), 'ms')} | | | |",
        row(
            "peak memory (RSS) of the function process",
            "sets the Lambda memory",
            rss["function"],
            rss["baseline"],
            "",
            unit="MB",
        ),
        "",
        "Notes:",
        "",
        f"- The single-applicant event is `events/predict.json` (REST v1) without its `Idempotency-Key`; the"
        f" model answered `{warm['function']['single_decision']}` with {warm['function']['single_reasons']}"
        " reasons, so every call runs the reasons' second onnxruntime pass. The batch is the first 1000 rows"
        f" of `data/credit.csv` ({outcomes['approve']} approve, {outcomes['review']} review,"
        f" {outcomes['decline']} decline): one model run for all rows and one for the reasons of the"
        " review and decline rows.",
        "- Where the batch's time goes (medians, measured apart in the same process):"
        f" `underwriting.assess` (model, policy and reasons, no I/O) {parts['assess_ms']:.1f} ms, of which"
        f" the model run on 1000 rows {parts['model_run_ms']:.1f} ms and `reasons.notices` for the"
        f" {parts['adverse_rows']:.0f} adverse rows {parts['reasons_ms']:.1f} ms (its one onnxruntime run"
        " scores a variant of each such row per input it could improve); the rest is Mangum, request"
        " validation, the records and their write, the log line and JSON.",
        "- Every call goes through the whole handler: Mangum, FastAPI validation, scoring, policy, reasons,"
        f" the decision record (SQLite on {info['log_dir']}, one transaction per batch) and Powertools'"
        " JSON log line and EMF flush. In Lambda the record goes to DynamoDB instead: add one PutItem"
        " round trip per single decision, and for a batch of 1000 forty BatchWriteItem calls of 25,"
        " eight in flight at a time; those depend on the network, not on this code.",
        f"- Not in the cold start above, because a local run makes no AWS client: importing boto3 and"
        f" creating the S3 and DynamoDB clients takes {boto:.0f} ms here (median of {len(aws)}), and with"
        f" active X-Ray tracing the X-Ray SDK import adds {xray:.0f} ms. A deployed cold start pays the"
        " first, and the second only with `Tracing: Active`.",
        "- Shadow scoring: the shadow is the champion's own graph with one more metadata entry (other"
        " bytes, so the service scores it; the same nodes, so it costs what a challenger of the same"
        " family costs). Its work per request is one more onnxruntime run on the input tensors already"
        " built for the champion, and the policy's probability correction and decision: timed apart,"
        f" `underwriting.shadow_score` takes {shadowed['score_ms']:.3f} ms (median of 2000); the row above"
        " is the"
        " whole handler with and without it, calls alternating one by one in one process.",
        "- Tracing is off in these runs (`POWERTOOLS_TRACE_DISABLED=1`), as outside Lambda.",
        "- Peak RSS is the most of the cold-start processes and the warm process (which ran "
        f"{options.singles + options.singles // 10 + 1} single calls and {options.batches + 3} batches)."
        " Lambda sizes CPU with memory, so choose the memory size for CPU, with this as the floor.",
        "",
    ]
    kept_load = kept_load_section(options.out)
    kept = {
        title: kept_section(options.out, title) for title in (retrain_curve.SECTION, labelled_reads.SECTION)
    }
    options.out.write_text("\n".join(lines))
    if kept_load:
        write_section(kept_load, options.out)
    for title, text in kept.items():
        if text:
            retrain_curve.write_section(text, options.out, title)
