"""The load campaign at toy scale, so that ``make load`` cannot rot, and its integrity check can fail."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bench import load


@pytest.mark.slow
def test_campaign_at_small_scale_loses_nothing(tmp_path: Path) -> None:
    results, problems, records = load.campaign("uvicorn", per_client=10, levels=(1, 3))
    assert problems == []
    assert [r.clients for r in results] == [1, 3]
    assert all(set(r.statuses) == {200} for r in results)
    # 4 clients x 10 steps: a batch of 100 each, one idempotent pair (one record), one GET.
    assert records == 4 * (100 + 7 + 1)


def _log(path: Path, records: dict[str, dict]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE decisions (decision_id TEXT PRIMARY KEY, record TEXT)")
        for decision_id, inputs in records.items():
            conn.execute(
                "INSERT INTO decisions VALUES (?, ?)",
                (decision_id, json.dumps({"decision_id": decision_id, "inputs": inputs})),
            )


def test_verify_names_missing_changed_and_unanswered_records(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite3"
    _log(db, {"a": {"age": 30}, "b": {"age": 41}, "c": {"age": 50}})
    ledger = load.Ledger()
    ledger.fresh(["a", "b", "x"], [{"age": 30}, {"age": 40}, {"age": 60}])
    ledger.statuses[503] += 1
    problems = " | ".join(load.verify(ledger, db))
    assert "1 answered decisions have no record" in problems
    assert "1 records hold other inputs" in problems
    assert "1 records were never answered" in problems
    assert "1 answers were 5xx" in problems
    ok = load.Ledger()
    ok.fresh(["a", "b", "c"], [{"age": 30}, {"age": 41}, {"age": 50}])
    assert load.verify(ok, db) == []


def test_section_replaces_itself_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nbench table\n")
    load.write_section(f"{load.BEGIN}\nfirst\n{load.END}", path)
    load.write_section(f"{load.BEGIN}\nsecond\n{load.END}", path)
    text = path.read_text()
    assert "bench table" in text and "second" in text and "first" not in text
