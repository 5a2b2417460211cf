"""What reading the labelled decisions costs, by each way of reading them (``make labelled-reads``).

The retrain and the monitor need the decisions with a recorded outcome. Three ways, measured on
one table in moto built from ``template.yaml``'s own keys and indexes:

- **scan**: the filtered Scan the retrain used (``attribute_exists(outcome)``): DynamoDB reads,
  and bills, every item, and hands back the labelled ones;
- **index, first run**: :func:`training.labelled_decisions.refresh` with no snapshot, which reads
  the sparse ``by-outcome-month`` index over the whole retention;
- **index, a week later**: the same with the snapshot, after a week of new outcomes.

The records are the service's own: applicants of ``data/credit.csv`` decided through
``POST /predict/batch`` on the local app (bundled model, SQLite), then copied with new ids and
creation times spread over the retention, a share of the old enough ones given an outcome at a
later time. For each way: the requests, the items DynamoDB reads, their bytes by DynamoDB's item
size rules (attribute names plus values) and the read request units that makes (eventually
consistent: half a unit per 4 KB), and moto's wall time (moto's, not DynamoDB's: moto walks its
whole table per Query, so its times favour the Scan). A DynamoDB export to S3 is not runnable in
moto; its cost is the table's size per export (a full export) and is computed from the measured
size, labelled as computed. A projection to a bank's table (1,000 decisions a day over the 800-day
retention) scales the measured bytes per item.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Reading the labelled decisions"
TABLE = "labelled-reads"
BUCKET = "labelled-reads"
RETENTION_DAYS = 800
LABEL_AGE_DAYS = 365
"""Outcomes are recorded for decisions at least this old (a loan's performance window)."""
LABELLED_SHARE = 0.5
"""Of the decisions old enough, this share get an outcome (the approved ones, roughly)."""
NEW_OUTCOMES_DAYS = 7
PROJECTED_PER_DAY = 1_000


@dataclass
class Cost:
    """One way of reading: requests, items read, their bytes, read units, wall time, records kept."""

    requests: int = 0
    items: int = 0
    bytes: int = 0
    units: float = 0.0
    seconds: float = 0.0
    records: int = 0


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's rules (strings by UTF-8 length, numbers about
    one byte per two digits plus one, maps and lists three bytes plus one per element)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    return len(str(inner))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def service_records(n: int) -> list[dict[str, Any]]:
    """``n`` decision records as the service writes them, for applicants of data/credit.csv."""
    from credit_api.api import create_app
    from credit_api.decision_log import SqliteDecisionLog
    from credit_api.schema import FEATURE_NAMES
    from credit_api.settings import Settings
    from fastapi.testclient import TestClient

    with open(ROOT / "data" / "credit.csv", newline="") as handle:
        rows = [
            {k: _number(v) for k, v in row.items() if k in FEATURE_NAMES} for row in csv.DictReader(handle)
        ]
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        log = SqliteDecisionLog(Path(tmp) / "decisions.sqlite3")
        client = TestClient(create_app(Settings(decisions_db=Path(tmp) / "d.sqlite3"), log=log))
        answer = client.post("/predict/batch", json={"applicants": rows[:n]})
        answer.raise_for_status()
        return log.records()


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def decisions(templates: list[dict[str, Any]], n: int, now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` copies of the service's records, new ids, created uniformly over the retention; a
    share of those at least a year old labelled, the outcome recorded between a year after the
    decision and now."""
    rng = random.Random(seed)  # nosec B311: synthetic benchmark data, not a secret
    made = []
    for i in range(n):
        created = now - timedelta(seconds=rng.uniform(0, (RETENTION_DAYS - 1) * 86400))
        record = {
            **templates[i % len(templates)],
            "decision_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "created_at": _iso(created),
            "expires_at": int(created.timestamp()) + RETENTION_DAYS * 86400,
            "outcome": None,
        }
        mature = created + timedelta(days=LABEL_AGE_DAYS)
        if mature < now - timedelta(days=NEW_OUTCOMES_DAYS) and rng.random() < LABELLED_SHARE:
            recorded = mature + (now - timedelta(days=NEW_OUTCOMES_DAYS) - mature) * rng.random()
            record["outcome"] = _outcome(record, recorded, rng)
        made.append(record)
    return made


def _outcome(record: dict[str, Any], recorded: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "defaulted": rng.random() < float(record["probability_of_default"]),
        "observed_at": _iso(recorded)[:10],
        "recorded_at": _iso(recorded),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def measured(client: Any, cost: Cost) -> Iterator[None]:
    """Count the Scan and Query calls of ``client`` and the items and bytes they read."""

    def after(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in ("Scan", "Query"):
            return
        cost.requests += 1
        cost.items += parsed.get("ScannedCount", parsed.get("Count", 0))
        if model.name == "Query":  # a Scan's bytes are the table's (run() sets them)
            page_bytes = sum(item_size(item) for item in parsed.get("Items", []))
            cost.bytes += page_bytes
            cost.units += max(1, -(-page_bytes // 4096)) / 2

    client.meta.events.register("after-call.dynamodb", after)
    started = time.perf_counter()
    try:
        yield
    finally:
        cost.seconds = time.perf_counter() - started
        client.meta.events.unregister("after-call.dynamodb", after)


def run(n: int) -> dict[str, Any]:
    import boto3
    from credit_api.decision_log import DynamoDecisionLog, _decision_item
    from moto import mock_aws

    from infra.template import load
    from training import labelled_decisions

    now = datetime.now(UTC)
    templates = service_records(200)
    made = decisions(templates, n, now)
    properties = load()["Resources"]["DecisionsTable"]["Properties"]
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            **{k: properties[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
        )
        DynamoDecisionLog(TABLE, client=dynamodb).put_many(made)
        table_bytes = sum(item_size(_decision_item(r)) for r in made)
        costs = {"scan": Cost(), "first": Cost(), "week": Cost()}
        with measured(dynamodb, costs["scan"]):
            pages = dynamodb.get_paginator("scan").paginate(
                TableName=TABLE, FilterExpression="attribute_exists(outcome)"
            )
            costs["scan"].records = sum(len(p["Items"]) for p in pages)
        costs["scan"].bytes = table_bytes  # every item is read, whatever the filter keeps
        costs["scan"].units = table_bytes / 4096 / 2
        with measured(dynamodb, costs["first"]):
            costs["first"].records = len(labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE).records)
        fresh = _new_outcomes(made, now)
        log = DynamoDecisionLog(TABLE, client=dynamodb)
        for decision_id, outcome in fresh:
            log.record_outcome(decision_id, outcome)
        snapshot = labelled_decisions.load(s3, BUCKET)
        snapshot_bytes = s3.head_object(Bucket=BUCKET, Key=labelled_decisions.SNAPSHOT_KEY)["ContentLength"]
        later = now + timedelta(days=NEW_OUTCOMES_DAYS)
        with measured(dynamodb, costs["week"]):
            refreshed = labelled_decisions.refresh(s3, dynamodb, BUCKET, TABLE, now=later)
            costs["week"].records = len(refreshed.records)
    return {
        "decisions": n,
        "labelled": sum(r["outcome"] is not None for r in made),
        "new_outcomes": len(fresh),
        "table_bytes": table_bytes,
        "snapshot_bytes": snapshot_bytes,
        "snapshot_records": len(snapshot.records),
        "costs": {k: vars(v) for k, v in costs.items()},
    }


def _new_outcomes(made: list[dict[str, Any]], now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """A week of new outcomes: for unlabelled decisions a year old or more, one a week's share each."""
    rng = random.Random(11)  # nosec B311: synthetic benchmark data, not a secret
    old = [
        r
        for r in made
        if r["outcome"] is None and r["created_at"] < _iso(now - timedelta(days=LABEL_AGE_DAYS))
    ]
    chosen = rng.sample(old, max(1, len(old) * NEW_OUTCOMES_DAYS // (RETENTION_DAYS - LABEL_AGE_DAYS)))
    return [
        (r["decision_id"], _outcome(r, now + timedelta(hours=rng.uniform(1, 24 * 6)), rng)) for r in chosen
    ]


def projected(cost: dict[str, Any], scale: float) -> float:
    """Read units of ``cost`` on a table ``scale`` times larger: the bytes grow, the number of
    requests (a query per partition) does not, and each costs at least half a unit."""
    return max(cost["requests"] / 2, cost["bytes"] * scale / 4096 / 2)


def section(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: the measured costs, then the projection."""
    n, costs = result["decisions"], result["costs"]
    per_item = result["table_bytes"] / n
    names = {
        "scan": "Scan, filtered (before)",
        "first": "outcome index, first run (no snapshot)",
        "week": f"outcome index, {NEW_OUTCOMES_DAYS} days later (snapshot)",
    }
    lines = [
        SECTION,
        "",
        f"`make labelled-reads`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, moto in-process. {n:,} decisions"
        f" (the service's own records) over {RETENTION_DAYS} days, {result['labelled']:,} with an outcome;"
        f" then {result['new_outcomes']:,} outcomes recorded in {NEW_OUTCOMES_DAYS} days. Table"
        f" {result['table_bytes'] / 2**20:.1f} MiB ({per_item:,.0f} B a decision, DynamoDB's size rules);"
        f" snapshot {result['snapshot_bytes'] / 2**20:.2f} MiB gzip,"
        f" {result['snapshot_records']:,} records.",
        "",
        "| read | requests | items read | MiB read | read units | records kept | moto s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in names.items():
        c = costs[key]
        lines.append(
            f"| {name} | {c['requests']:,} | {c['items']:,} | {c['bytes'] / 2**20:.2f} | {c['units']:,.0f}"
            f" | {c['records']:,} | {c['seconds']:.1f} |"
        )
    scale = PROJECTED_PER_DAY * RETENTION_DAYS / n
    gib = result["table_bytes"] * scale / 2**30
    lines += [
        "",
        f"Projection (computed, not measured) to {PROJECTED_PER_DAY:,} decisions a day kept {RETENTION_DAYS}"
        f" days ({PROJECTED_PER_DAY * RETENTION_DAYS:,} items, {gib:.1f} GiB), the bytes read scaled by the"
        f" table's size, the requests as measured: a Scan reads {projected(costs['scan'], scale):,.0f} read"
        f" units every run; the weekly incremental read {projected(costs['week'], scale):,.0f}; the first"
        f" run {projected(costs['first'], scale):,.0f}, once."
        f" A full DynamoDB export to S3 reads the whole {gib:.1f} GiB per export (billed per GB of table),"
        " takes minutes and needs point-in-time recovery, which the table has, and the export permissions;"
        " an incremental export still needs the merge the snapshot does. Hence the index.",
        "- The moto column is moto's time: it walks its whole table for each Query, so it favours the Scan;"
        " DynamoDB's time follows the items read.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.retrain_curve import write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    options = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the service's log is not the result
    text = section(run(options.decisions))
    print(text)
    if options.write:
        write_section(text, title=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
