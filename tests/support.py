"""Test helpers shared by every test package: events, a Lambda context, EMF and JSON logs.

``load_event`` is the one way tests read ``events/*.json``, the same files ``sam local
invoke -e`` takes, so the tests exercise the events users run.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"


@cache
def _read_event(name: str) -> dict[str, Any]:
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json``; ``overrides`` replace top-level keys."""
    event = copy.deepcopy(_read_event(name))
    event.update(overrides)
    return event


EVENT_DECISION_ID = "341a497d-3f46-55c1-8a01-4b6854734f05"
"""The decision id written in events/decision.json and events/outcome.json."""


def for_decision(event: dict[str, Any], decision_id: str) -> dict[str, Any]:
    """``event`` (decision.json or outcome.json) about ``decision_id``: ids are random, so a
    test puts in the one its predict event was given."""
    return json.loads(json.dumps(event).replace(EVENT_DECISION_ID, decision_id))


def event_names() -> list[str]:
    return sorted(p.stem for p in EVENTS_DIR.glob("*.json"))


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the attributes Powertools reads)."""

    function_name: str = "PredictFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:PredictFunction"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/PredictFunction"
    log_stream_name: str = "2026/11/30/[$LATEST]4f1b2c3d4e5f60718293a4b5c6d7e8f9"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed one per line (Powertools logs and EMF records alike)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def emf_records(text: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF records in captured stdout."""
    return [r for r in json_lines(text) if "_aws" in r]


def log_records(text: str) -> list[dict[str, Any]]:
    """The Powertools JSON log lines in captured stdout."""
    return [r for r in json_lines(text) if "_aws" not in r and "level" in r]


def metric_names(record: dict[str, Any]) -> set[str]:
    return {m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def metric_values(records: list[dict[str, Any]], name: str) -> list[float]:
    """Every value published for metric ``name`` across ``records``."""
    values: list[float] = []
    for record in records:
        if name in metric_names(record):
            value = record[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


def dimensions(record: dict[str, Any]) -> set[str]:
    return {d for block in record["_aws"]["CloudWatchMetrics"] for ds in block["Dimensions"] for d in ds}


def response_json(response: dict[str, Any]) -> Any:
    """The JSON body of a Lambda proxy response."""
    return json.loads(response["body"])
