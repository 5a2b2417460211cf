"""The retrain's training step by rows: wall time and peak memory at 1k, 10k and 100k rows.

``python -m bench.retrain_curve [--rows 1000,10000,100000] [--quick] [--jobs 1] [--write]``
(``make retrain-curve``). Each size runs in a fresh child process (``--child``), so one size's peak
resident set (``ru_maxrss``) is not another's and imports are paid once per size, as in a
Lambda run. The child times :func:`training.train.train` exactly as the retrain calls it
(``max_search_rows=training.retrain.SEARCH_ROWS``, two fold workers, or ``--jobs 1`` as Lambda
runs it: joblib finds no /dev/shm there and runs the folds one after another); the frame is built before the
clock starts, and its resident set then is reported too (``base_rss_mb``), so the training
step's own memory is the difference.

The rows are :func:`synthetic_frame`: ``data/credit.csv`` sampled with replacement, each
numeric input moved by Gaussian noise (a tenth of its standard deviation, rounded and clipped
to the schema's bounds) so the folds are not copies of each other; categories and labels are
the sampled row's. The data are therefore about as hard to learn as the real 1,000 rows, and
the model quality numbers of a run are not the point: time and memory are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess  # nosec B404
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 10_000, 100_000)
NOISE = 0.1
"""Noise on each numeric input, as a fraction of its standard deviation in data/credit.csv."""
LAMBDA_SECONDS = 900
LAMBDA_MEMORY_MB = 4096
"""RetrainFunction's Timeout and MemorySize in template.yaml: the limits each size is held to."""
SECTION = "## Retrain time and memory by rows"


def synthetic_frame(rows: int, seed: int = 0) -> Any:
    """``rows`` rows of data/credit.csv drawn with replacement, numeric inputs jittered (see above)."""
    import numpy as np
    from credit_api.schema import BY_NAME, NUMERIC

    from training.data import CREDIT_CSV, load

    base = load(CREDIT_CSV)
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    for name in NUMERIC:
        feature = BY_NAME[name]
        noise = rng.normal(0.0, NOISE * float(base[name].std()), size=rows)
        moved = np.rint(frame[name].to_numpy() + noise)
        frame[name] = np.clip(moved, feature.minimum, feature.maximum).astype(base[name].dtype)
    return frame


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tree_rss_mb(root: int) -> float:
    """The resident set of ``root`` and all its descendants now, from /proc (Linux)."""
    parents: dict[int, int] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields.get("PPid", "0").strip())
        rss[int(entry.name)] = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(pid, 0.0) for pid in tree)


class TreeSampler(threading.Thread):
    """Samples :func:`tree_rss_mb` of this process every ``interval`` s: the joblib fold workers
    are separate processes that ``ru_maxrss`` of the main process does not see."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def measure(rows: int, quick: bool, seed: int = 0, n_jobs: int = 2) -> dict[str, Any]:
    """One size, in this process: the training step's wall time and the peak resident set."""
    from training.retrain import SEARCH_ROWS
    from training.train import train

    frame = synthetic_frame(rows, seed)
    base_rss = peak_rss_mb()
    load_before = os.getloadavg()[0]
    sampler = TreeSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="retrain-curve-") as tmp:
        started = time.perf_counter()
        result = train(
            frame,
            out_dir=Path(tmp) / "challenger",
            seed=seed,
            quick=quick,
            max_search_rows=SEARCH_ROWS,
            n_jobs=n_jobs,
            progress=lambda message: None,
        )
        seconds = time.perf_counter() - started
    tree_peak = sampler.stop()
    return {
        "rows": rows,
        "quick": quick,
        "search_rows": SEARCH_ROWS,
        "n_jobs": n_jobs,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "base_rss_mb": round(base_rss, 1),
        "tree_peak_rss_mb": round(tree_peak, 1),
        "champion": result.champion,
        "cv_auc": round(float(result.cv_metrics["roc_auc"]), 4),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def run_child(rows: int, quick: bool, timeout: float, n_jobs: int = 2) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter; a size over ``timeout`` seconds is reported as such."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", "bench.retrain_curve", "--child", str(rows), out.name]
        command += ["--jobs", str(n_jobs)]
        if quick:
            command.append("--quick")
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'function'}"}
        # Its own process group: on a timeout its joblib fold workers are stopped with it.
        child = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)  # nosec B603: this interpreter on bench.retrain_curve
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return {"rows": rows, "quick": quick, "timed_out_after_s": timeout}
        if code != 0:
            raise RuntimeError(f"the {rows}-row run failed with exit code {code}")
        return json.loads(Path(out.name).read_text())


def verdict(result: dict[str, Any]) -> str:
    """Whether the size fits the RetrainFunction: time against 900 s, the peak against 4096 MB."""
    if "seconds" not in result:
        return f"not finished in {result['timed_out_after_s']:.0f} s"
    peak = max(result["peak_rss_mb"], result["tree_peak_rss_mb"])
    fits = result["seconds"] < LAMBDA_SECONDS and peak < LAMBDA_MEMORY_MB
    return "fits" if fits else "over Lambda's limits"


def _protocol(result: dict[str, Any]) -> str:
    name = "quick" if result["quick"] else "full"
    return f"{name}, one fold worker, as in Lambda" if result.get("n_jobs") == 1 else name


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| training rows | protocol | wall time (s) | peak RSS, main (MB)"
        " | of which the frame and imports (MB) | peak RSS, main + fold workers (MB)"
        " | chosen model | CV ROC AUC | load average (start, end)"
        " | on RetrainFunction (900 s, 4096 MB) |",
        "|---:|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        if "seconds" not in r:
            lines.append(
                f"| {r['rows']:,} | {_protocol(r)} | > {r['timed_out_after_s']:.0f}"
                f" | | | | | | | {verdict(r)} |"
            )
            continue
        load = ", ".join(f"{x:.1f}" for x in r.get("load_average", ()))
        lines.append(
            f"| {r['rows']:,} | {_protocol(r)} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f}"
            f" | {r['base_rss_mb']:.0f} | {r['tree_peak_rss_mb']:.0f} | {r['champion']}"
            f" | {r['cv_auc']:.3f} | {load} | {verdict(r)} |"
        )
    return "\n".join(lines)


def projections(results: list[dict[str, Any]]) -> list[str]:
    """The full protocol's time at sizes only the quick one reached: the full time at the largest
    size both measured, times the quick protocol's growth from there. A projection, labelled so."""
    done = [r for r in results if "seconds" in r]
    full = {r["rows"]: r["seconds"] for r in done if not r["quick"]}
    quick = {r["rows"]: r["seconds"] for r in done if r["quick"]}
    shared = sorted(set(full) & set(quick))
    if not shared:
        return []
    ref = shared[-1]
    return [
        f"- **Projection, not a measurement:** the full protocol at {rows:,} rows ="
        f" {full[ref]:.0f} s (full, {ref:,} rows) x {quick[rows]:.0f} / {quick[ref]:.0f}"
        f" (quick, {rows:,} / {ref:,} rows) = about {full[ref] * quick[rows] / quick[ref]:.0f} s."
        for rows in sorted(set(quick) - set(full))
        if rows > ref
    ]


def section(results: list[dict[str, Any]]) -> str:
    search = next((r["search_rows"] for r in results if "search_rows" in r), None)
    bounded = f"bounded to {search:,} rows" if search else "bounded"
    return "\n".join(
        [
            SECTION,
            "",
            f"`make retrain-curve` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores,"
            f" Python {platform.python_version()}): `training.train.train` as the retrain calls it,"
            f" hyperparameter searches {bounded} (`training.retrain.SEARCH_ROWS`), two fold workers"
            " unless the row says one;"
            " *full* is the retrain's protocol (`training.train.protocol_for`: 5 outer folds repeated"
            " 5 times, once past 20,000 rows), *quick* the small one (3 outer folds,"
            " small grids, few trees: `RETRAIN_QUICK`). Rows are `data/credit.csv` sampled with"
            f" replacement, numeric inputs moved by Gaussian noise of {NOISE} standard deviations"
            " (`bench/retrain_curve.py`), so copies of one loan fall in different folds and the CV AUC"
            " is flattering: time and memory are the point. Each size runs in its own process; the"
            " wall time excludes building the frame. Peak RSS: `ru_maxrss` of the main process, and"
            " the largest sum over the main process and its joblib fold workers (sampled from /proc"
            " every 0.5 s).",
            "",
            table(results),
            "",
            *projections(results),
            "",
        ]
    )


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md", title: str = SECTION) -> None:
    """Replace the section ``title`` (this one's by default) in BENCHMARKS.md, or append it; other
    sections are left as they are."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if title in current:
        before, _, after = current.partition(title)
        rest = after.split("\n## ", 1)
        tail = "\n## " + rest[1] if len(rest) > 1 else ""
        current = before.rstrip() + "\n\n" + text + tail
    else:
        current = current.rstrip() + "\n\n" + text
    path.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(map(str, SIZES)), help="comma-separated sizes")
    parser.add_argument(
        "--quick", action="store_true", help="the quick search protocol (say so in the table)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="fold workers (1: as Lambda runs it, no /dev/shm)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per size")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "RESULT_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        rows, out = args.child
        Path(out).write_text(json.dumps(measure(int(rows), args.quick, n_jobs=args.jobs)))
        return 0
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        result = run_child(rows, args.quick, args.timeout, args.jobs)
        print(json.dumps(result), flush=True)
        results.append(result)
    text = section(results)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
