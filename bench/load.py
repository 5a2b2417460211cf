"""Load campaign: the API under 1, 8, 32 and 64 concurrent clients, then a check that nothing was lost.

``credit load`` (or ``make load``). Two configurations, each against its own empty
SQLite decision log and the bundled model, only on 127.0.0.1:

- ``uvicorn``: ``credit_api.main:app`` under uvicorn, one worker, as ``make run`` serves it.
- ``lambda``: the Lambda handler (``credit_api.main.handler``: Mangum behind Powertools) fed
  real-shaped REST (payload v1) events by the local API Gateway stand-in
  (``tests/web/stage_gateway.py``). A Lambda execution environment serves one request at a
  time, so each stand-in process is one environment; the campaign runs one per core of this
  machine (2 here) and lets the clients queue for them, as requests queue for a function
  whose concurrency is capped. In AWS the pool grows to the reserved concurrency instead, so
  read these requests/s per environment, not as the deployed ceiling.

Each client sends a fixed number of requests, one after the other: mostly ``POST /predict``
with rows of ``data/credit.csv``, every tenth a batch of 100, some with an ``Idempotency-Key``
sent twice (the second must replay the first), some ``GET /decisions/{id}`` of an earlier
answer. Every level is bounded in requests and in time.

After each configuration the decision log is read back: every fresh 200 has exactly one
record, whose inputs are those sent; a replay returns the ids of the first answer and adds no
record; the log holds no record that no answer named; no 5xx. Any failure exits non-zero.
Results go to the ``load`` section of ``BENCHMARKS.md`` (``bench.run`` keeps that section).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import statistics
import subprocess  # nosec B404
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (1, 8, 32, 64)
STAGE = "Prod"
BEGIN = "<!-- load:begin -->"
END = "<!-- load:end -->"
BATCH_SIZE = 100
LEVEL_TIMEOUT_S = 120.0


def applicants() -> list[dict[str, Any]]:
    """The 1000 rows of ``data/credit.csv`` as API inputs (the label dropped)."""
    with (ROOT / "data" / "credit.csv").open() as f:
        return [
            {k: int(v) if v.lstrip("-").isdigit() else v for k, v in row.items() if k != "default"}
            for row in csv.DictReader(f)
        ]


@dataclass
class Ledger:
    """What the clients were told, to be checked against the decision log afterwards."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    """decision id -> the inputs sent, for every fresh decision answered."""
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh(self, ids: list[str], rows: list[dict[str, Any]]) -> None:
        with self.lock:
            for decision_id, row in zip(ids, rows, strict=True):
                if decision_id in self.sent:
                    self.problems.append(f"decision id {decision_id} answered twice as new")
                self.sent[decision_id] = row

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


class Client:
    """One client: a sequence of requests on its own connection."""

    def __init__(self, base: str, rows: list[dict[str, Any]], ledger: Ledger, seed: int) -> None:
        self.http = httpx.Client(base_url=base, timeout=30.0, headers={"x-api-key": "load-key"})
        self.rows = rows
        self.ledger = ledger
        self.seed = seed
        self.answered: list[str] = []

    def _post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self._timed("POST", path, json=body, headers=headers)

    def _timed(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        response = self.http.request(method, path, **kwargs)
        with self.ledger.lock:
            self.ledger.latencies.append((time.perf_counter() - started) * 1000)
            self.ledger.statuses[response.status_code] += 1
        return response

    def _row(self, i: int) -> dict[str, Any]:
        return self.rows[(self.seed * 97 + i * 31) % len(self.rows)]

    def step(self, i: int) -> None:
        kind = i % 10
        if kind == 9:
            start = (self.seed * 13 + i) % (len(self.rows) - BATCH_SIZE)
            batch = self.rows[start : start + BATCH_SIZE]
            response = self._post("predict/batch", {"applicants": batch})
            if response.status_code == 200:
                self._record([r["decision_id"] for r in response.json()["results"]], batch, response)
        elif kind == 4:
            row, key = self._row(i), str(uuid.uuid4())
            first = self._post("predict", row, key)
            second = self._post("predict", row, key)
            if first.status_code == 200:
                self._record([first.json()["decision_id"]], [row], first)
                if second.status_code != 200 or second.json()["decision_id"] != first.json()["decision_id"]:
                    self.ledger.problem(f"retry with key {key}: {second.status_code}, not the first answer")
                elif second.headers.get("Idempotent-Replayed") != "true":
                    self.ledger.problem(f"retry with key {key} was not marked as a replay")
        elif kind == 7 and self.answered:
            decision_id = self.answered[len(self.answered) // 2]
            response = self._timed("GET", f"decisions/{decision_id}")
            if response.status_code != 200 or response.json()["inputs"] != self.ledger.sent[decision_id]:
                self.ledger.problem(f"GET decisions/{decision_id}: {response.status_code} or other inputs")
        else:
            row = self._row(i)
            response = self._post("predict", row)
            if response.status_code == 200:
                self._record([response.json()["decision_id"]], [row], response)

    def _record(self, ids: list[str], rows: list[dict[str, Any]], response: httpx.Response) -> None:
        if response.headers.get("Idempotent-Replayed") == "true":
            self.ledger.problem("a request without a repeated key was answered as a replay")
            return
        self.ledger.fresh(ids, rows)
        self.answered.extend(ids)


@dataclass(frozen=True)
class LevelResult:
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_level(
    bases: list[str], clients: int, per_client: int, rows: list[dict[str, Any]], ledger: Ledger
) -> LevelResult:
    """``clients`` threads of ``per_client`` steps, spread over ``bases``, within :data:`LEVEL_TIMEOUT_S`."""
    before = len(ledger.latencies), Counter(ledger.statuses)
    deadline = time.monotonic() + LEVEL_TIMEOUT_S
    workers = [Client(bases[c % len(bases)], rows, ledger, seed=clients * 1000 + c) for c in range(clients)]

    def work(client: Client) -> None:
        try:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    ledger.problem(f"{clients} clients: level stopped at its time limit")
                    return
                client.step(i)
        except httpx.HTTPError as exc:
            ledger.problem(f"client error: {exc.__class__.__name__}: {exc}")
        finally:
            client.http.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies = sorted(ledger.latencies[before[0] :])
    statuses = dict(ledger.statuses - before[1])
    return LevelResult(
        clients=clients,
        requests=len(latencies),
        seconds=seconds,
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        statuses=statuses,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def server_env(db: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODEL_BUCKET", "DECISIONS_TABLE", "AWS_ENDPOINT_URL", "MODEL_DIR", "IDEMPOTENCY_TABLE")
    }
    env.update(
        {
            "DECISIONS_DB": str(db),
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_SERVICE_NAME": "credit-api",
            "POWERTOOLS_METRICS_NAMESPACE": "LoanDefault",
            "LOG_LEVEL": "WARNING",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    return env


def start_servers(config: str, db: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """The processes serving ``config`` and the base URL of each."""
    env = server_env(db)
    count = 1 if config == "uvicorn" else max(1, min(2, os.cpu_count() or 1))
    processes, bases = [], []
    for _ in range(count):
        port = free_port()
        if config == "uvicorn":
            argv = ["-m", "uvicorn", "credit_api.main:app", "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
            base, health = f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/health"
        else:
            argv = ["-m", "tests.web.stage_gateway", "--port", str(port), "--stage", STAGE]
            base = f"http://127.0.0.1:{port}/{STAGE}/"
            health = base + "health"
        process = subprocess.Popen(  # nosec B603: this interpreter, arguments fixed above
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        wait_ready(health, process)
        bases.append(base)
    return processes, bases


def stored(db: Path) -> dict[str, dict[str, Any]]:
    """decision id -> inputs, for every record in the log."""
    with sqlite3.connect(db) as conn:
        return {
            decision_id: json.loads(record)["inputs"]
            for decision_id, record in conn.execute("SELECT decision_id, record FROM decisions")
        }


def verify(ledger: Ledger, db: Path) -> list[str]:
    """Every fresh answer has exactly one record with the inputs sent, and no record is unaccounted for."""
    problems = list(ledger.problems)
    records = stored(db)
    missing = [i for i in ledger.sent if i not in records]
    changed = [i for i, inputs in ledger.sent.items() if i in records and records[i] != inputs]
    extra = [i for i in records if i not in ledger.sent]
    if missing:
        problems.append(f"{len(missing)} answered decisions have no record, e.g. {missing[0]}")
    if changed:
        problems.append(f"{len(changed)} records hold other inputs than were scored, e.g. {changed[0]}")
    if extra:
        problems.append(f"{len(extra)} records were never answered, e.g. {extra[0]}")
    server_errors = sum(n for status, n in ledger.statuses.items() if status >= 500)
    if server_errors:
        problems.append(f"{server_errors} answers were 5xx")
    return problems


CampaignResult = tuple[list[LevelResult], list[str], int]


def campaign(config: str, per_client: int, levels: tuple[int, ...]) -> CampaignResult:
    """All levels of one configuration: (results, integrity problems, records in the log)."""
    rows = applicants()
    with tempfile.TemporaryDirectory(prefix=f"load-{config}-") as tmp:
        db = Path(tmp) / "decisions.sqlite3"
        processes, bases = start_servers(config, db)
        ledger = Ledger()
        try:
            results = [run_level(bases, clients, per_client, rows, ledger) for clients in levels]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
        return results, verify(ledger, db), len(stored(db))


def section(results: dict[str, CampaignResult], per_client: int) -> str:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        BEGIN,
        "## Load (`make load`)",
        "",
        f"Written by `credit load` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average at"
        f" the end {load} (2 shared cores: clients and servers compete for them). Each client sends"
        f" {per_client} requests one after another (mostly `POST /predict`, every tenth a batch of"
        f" {BATCH_SIZE}, idempotent retries, `GET /decisions/{{id}}`); a batch counts as one request.",
        "`lambda` is the Lambda handler behind the local API Gateway stand-in, one execution environment"
        " per core, clients queueing for them.",
        "",
        "| configuration | clients | requests | requests/s | p50 ms | p99 ms | statuses | records"
        " | integrity |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for config, (levels, problems, records) in results.items():
        for k, r in enumerate(levels):
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
            verdict = ("nothing lost or changed" if not problems else "; ".join(problems)) if k == 0 else ""
            lines.append(
                f"| {config} | {r.clients} | {r.requests} | {r.rate:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f}"
                f" | {statuses} | {records if k == 0 else ''} | {verdict} |"
            )
    lines += ["", END]
    return "\n".join(lines)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the load section of ``path`` (or append it), leaving the rest as ``bench.run`` wrote it."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


CONFIGS = ("uvicorn", "lambda")


def run(
    configs: Sequence[str] = CONFIGS,
    per_client: int = 20,
    levels: tuple[int, ...] = LEVELS,
    *,
    write: bool = True,
) -> tuple[str, list[str]]:
    """Every campaign, its section (written to ``BENCHMARKS.md`` unless ``write`` is false), and
    the integrity problems found (none, or the run failed)."""
    results = {config: campaign(config, per_client, levels) for config in configs}
    text = section(results, per_client)
    if write:
        write_section(text)
    return text, [problem for _, problems, _ in results.values() for problem in problems]
