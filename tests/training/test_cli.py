"""The ``credit`` command line: its help, and each command calling the work it names.

``score`` is checked against the API itself: the same rows through ``POST /predict/batch``
(TestClient) must get the same decisions, probabilities, scores, grades and reasons.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from credit_api.api import create_app
from credit_api.schema import FEATURE_NAMES, NUMERIC
from credit_api.settings import Settings
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from training import cli
from training.cli import app
from training.data import CREDIT_CSV, sha256_file

COMMANDS = (
    "data",
    "eda",
    "train",
    "serve",
    "local-stack",
    "seed",
    "score",
    "retrain",
    "monitor",
    "bench",
    "load",
)
runner = CliRunner()


def plain(text: str) -> str:
    """Help or error text without rich's boxes and line breaks."""
    return " ".join(text.replace("│", " ").split())


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_top_level_help_lists_every_command() -> None:
    output = invoke("--help").output
    assert "Operate the loan-default service" in output
    for command in COMMANDS:
        assert command in output


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_summary_documented_options_and_an_example(command: str) -> None:
    output = plain(invoke(command, "--help").output)
    callbacks = {c.name or c.callback.__name__: c.callback for c in app.registered_commands}
    summary = callbacks[command].__doc__.splitlines()[0]
    assert summary.split(":")[0].rstrip(".") in output
    assert "Example" in output
    assert "--help" in output


def test_train_help_says_that_export_is_part_of_training() -> None:
    assert "no separate export step" in plain(invoke("train", "--help").output)


def test_help_imports_none_of_the_heavy_libraries_and_writes_nothing(tmp_path: Path) -> None:
    """``credit --help`` must stay fast: the commands import their modules only when they run."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from training.cli import app\n"
        "for args in (['--help'], ['score', '--help'], ['train', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "heavy = {'pandas', 'sklearn', 'onnxruntime', 'boto3', 'numpy', 'credit_api', 'uvicorn'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def applicants_csv(path: Path, rows: int = 40) -> list[dict[str, str]]:
    """The first ``rows`` of data/credit.csv (with its ``default`` column), plus two bad rows."""
    with CREDIT_CSV.open(newline="") as handle:
        good = [row for _, row in zip(range(rows), csv.DictReader(handle), strict=False)]
    bad_age = {**good[0], "age": "forty"}
    bad_purpose = {**good[1], "purpose": "yacht"}
    float_months = {**good[2], "months_loan_duration": f"{good[2]['months_loan_duration']}.0"}
    written = [*good[:10], bad_age, float_months, *good[10:], bad_purpose]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(good[0]))
        writer.writeheader()
        writer.writerows(written)
    return written


def api_answers(tmp_path: Path, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    applicants = [
        {k: int(float(v)) if k in NUMERIC else v for k, v in r.items() if k in FEATURE_NAMES} for r in rows
    ]
    client = TestClient(create_app(Settings(decisions_db=tmp_path / "api.sqlite3")))
    response = client.post("/predict/batch", json={"applicants": applicants})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_score_gives_the_api_decisions_and_reports_bad_rows(tmp_path: Path) -> None:
    sent = applicants_csv(tmp_path / "in.csv")
    result = invoke("score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"))
    with (tmp_path / "out.csv").open(newline="") as handle:
        out = list(csv.DictReader(handle))

    assert len(out) == len(sent)
    assert [{k: r[k] for k in sent[0]} for r in out] == sent  # every input column kept, in order
    bad = [r for r in out if r["error"]]
    assert [r["age"] for r in bad] == ["forty", sent[-1]["age"]]
    assert "age must be a whole number from" in bad[0]["error"] and "'forty'" in bad[0]["error"]
    assert "purpose must be one of" in bad[1]["error"] and "'yacht'" in bad[1]["error"]
    assert all(r["decision"] == "" for r in bad)

    good = [r for r in out if not r["error"]]
    expected = api_answers(tmp_path, [s for s, r in zip(sent, out, strict=True) if not r["error"]])
    for row, answer in zip(good, expected, strict=True):
        assert row["decision"] == answer["decision"]
        assert float(row["probability_of_default"]) == answer["probability_of_default"]
        assert float(row["score"]) == answer["score"]
        assert row["risk_grade"] == answer["risk_grade"]
        assert row["model_version"] == answer["model_version"]
        assert row["reasons"] == "; ".join(r["message"] for r in answer["reasons"])
        assert row["decision_id"] == ""  # no --log: the temporary log's ids mean nothing
    assert {a["decision"] for a in expected} >= {"approve", "decline"}  # both paths exercised

    counts = {d: sum(a["decision"] == d for a in expected) for d in ("approve", "review", "decline")}
    total = len(sent)
    assert result.stdout.strip().endswith(
        f"approve {counts['approve']} ({counts['approve'] / total:.0%}), "
        f"review {counts['review']} ({counts['review'] / total:.0%}), "
        f"decline {counts['decline']} ({counts['decline'] / total:.0%}), "
        f"invalid 2 ({2 / total:.0%}) of {total} rows"
    )


def test_score_with_a_log_keeps_the_decision_records(tmp_path: Path) -> None:
    from credit_api.decision_log import SqliteDecisionLog

    sent = applicants_csv(tmp_path / "in.csv", rows=5)
    log = tmp_path / "decisions.sqlite3"
    invoke(
        "score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--log", str(log), "--batch-size", "2"
    )
    with (tmp_path / "out.csv").open(newline="") as handle:
        ids = [r["decision_id"] for r in csv.DictReader(handle) if not r["error"]]
    assert len(ids) == len(sent) - 2  # all but the two bad rows
    records = SqliteDecisionLog(log).get_many(ids)
    assert sorted(records) == sorted(ids)


def test_score_refuses_a_file_without_the_input_columns(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("age,amount\n30,1000\n")
    result = runner.invoke(app, ["score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert "lacks the input columns checking_balance" in plain(result.output)
    assert not (tmp_path / "out.csv").exists()


def test_data_reproduces_credit_csv(tmp_path: Path) -> None:
    out = tmp_path / "credit.csv"
    result = invoke("data", "--out", str(out))
    assert sha256_file(out) == sha256_file(CREDIT_CSV)
    assert sha256_file(CREDIT_CSV) in result.stdout


def test_data_refuses_a_raw_file_that_is_not_the_documented_one(tmp_path: Path) -> None:
    raw = tmp_path / "germancredit.csv"
    raw.write_text("creditability,age\ngood,30\n")
    result = runner.invoke(app, ["data", "--raw", str(raw), "--out", str(tmp_path / "credit.csv")])
    assert result.exit_code == 2
    message = plain(result.output)
    assert "Invalid value for --raw:" in message and "has sha256" in message and "expected" in message
    assert not (tmp_path / "credit.csv").exists()


def test_train_passes_its_options_to_the_training_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.train

    seen: dict[str, Any] = {}

    from training import fairness, model_card
    from training.data import RAW_CSV

    def fake_train(frame: Any, **options: Any) -> Any:
        seen.update(options, rows=len(frame))
        out = options["out_dir"]
        return SimpleNamespace(
            champion="logistic", manifest_path=out / "manifest.json", reports_dir=Path("r"), manifest="M"
        )

    def fake_fairness(result: Any, frame: Any, raw: Path, **options: Any) -> dict[str, Any]:
        seen["fairness"] = (raw, options)
        return {"report": True}

    monkeypatch.setattr(training.train, "train", fake_train)
    monkeypatch.setattr(fairness, "run", fake_fairness)
    monkeypatch.setattr(fairness, "write", lambda report, reports: seen.update(fairness_written=reports))
    monkeypatch.setattr(model_card, "write", lambda reports, manifest, card: seen.update(card=card) or card)
    result = invoke(
        "train",
        "--quick",
        "--seed",
        "7",
        "--jobs",
        "1",
        "--out",
        str(tmp_path / "m"),
        "--reports",
        "r",
        "--card",
        str(tmp_path / "card.md"),
    )
    assert f"champion logistic: {tmp_path / 'm' / 'manifest.json'}" in result.stdout
    assert seen["fairness"] == (RAW_CSV, {"quick": True, "n_jobs": 1})
    assert seen["fairness_written"] == Path("r") and seen["card"] == tmp_path / "card.md"
    assert seen["rows"] == 1000
    assert (seen["out_dir"], seen["reports_dir"]) == (tmp_path / "m", Path("r"))
    assert (seen["seed"], seen["quick"], seen["n_jobs"]) == (7, True, 1)


def test_train_refuses_to_start_without_the_raw_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--raw", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "needs the raw UCI file" in plain(result.output)


def test_serve_runs_uvicorn_on_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    invoke("serve")
    invoke("serve", "--host", "0.0.0.0", "--port", "8080")  # nothing is bound: uvicorn is faked
    assert calls == [
        ("credit_api.main:app", {"host": "127.0.0.1", "port": 8000}),
        ("credit_api.main:app", {"host": "0.0.0.0", "port": 8080}),
    ]


def test_seed_publishes_data_and_champion() -> None:
    import boto3
    from credit_api.model_store import read_pointer
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(
            Bucket="models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        result = invoke("seed", "--bucket", "models")
        s3 = boto3.client("s3")
        pointer = read_pointer(s3, "models")
        data = s3.get_object(Bucket="models", Key="data/credit.csv")["Body"].read()
    assert data == CREDIT_CSV.read_bytes()
    assert f"champion {pointer['model_version']}" in result.stdout


def test_retrain_reads_bucket_table_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.retrain

    seen: list[Any] = []

    class Result:
        def summary(self) -> dict[str, str]:
            return {"outcome": "kept"}

    def fake_retrain(s3: Any, dynamodb: Any, settings: Any) -> Result:
        seen.append((settings, s3.meta.endpoint_url, dynamodb.meta.endpoint_url))
        return Result()

    monkeypatch.setattr(training.retrain, "retrain", fake_retrain)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("MODEL_BUCKET", "env-bucket")
    monkeypatch.setenv("DECISIONS_TABLE", "env-table")
    result = invoke("retrain", "--quick")
    invoke("retrain", "--bucket", "b", "--table", "t")
    assert json.loads(result.stdout) == {"outcome": "kept"}
    assert [(s.bucket, s.table, s.quick, s.endpoint_url) for s, _, _ in seen] == [
        ("env-bucket", "env-table", True, "http://127.0.0.1:5999"),
        ("b", "t", False, "http://127.0.0.1:5999"),
    ]
    assert {url for _, s3, ddb in seen for url in (s3, ddb)} == {"http://127.0.0.1:5999"}


def test_bench_passes_its_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run

    seen: list[Any] = []
    monkeypatch.setattr(bench.run, "run", lambda options: seen.append(options) or "# Benchmarks")
    result = invoke(
        "bench", "--cold-runs", "2", "--singles", "10", "--batches", "1", "--out", str(tmp_path / "b.md")
    )
    assert seen == [
        bench.run.Options(cold_runs=2, singles=10, batches=1, out=tmp_path / "b.md", shadow_singles=3000)
    ]
    assert "# Benchmarks" in result.stdout


def test_load_passes_its_options_and_fails_on_an_integrity_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.load

    seen: list[Any] = []

    def fake_run(configs: list[str], per_client: int, levels: tuple[int, ...], *, write: bool) -> Any:
        seen.append((configs, per_client, levels, write))
        return "## Load", ["3 answers were 5xx"] if len(seen) == 2 else []

    monkeypatch.setattr(bench.load, "run", fake_run)
    invoke(
        "load",
        "--config",
        "lambda",
        "--level",
        "1",
        "--level",
        "8",
        "--requests-per-client",
        "5",
        "--no-write",
    )
    failed = runner.invoke(app, ["load"])
    assert seen == [(["lambda"], 5, (1, 8), False), (["uvicorn", "lambda"], 20, bench.load.LEVELS, True)]
    assert failed.exit_code == 1
    assert "INTEGRITY: 3 answers were 5xx" in failed.stderr


def test_cells_are_read_as_a_client_would_send_them() -> None:
    from credit_api.schema import EXAMPLE_APPLICANT

    row = {k: str(v) for k, v in EXAMPLE_APPLICANT.items()}
    assert cli.applicant_or_errors({**row, "amount": " 2500.0 "}) == (
        {**EXAMPLE_APPLICANT, "amount": 2500},
        "",
    )
    for name, text, expected in [
        ("amount", "2_500", "amount must be a whole number"),  # Python's int() would take it; JSON not
        ("amount", "2500.5", "amount must be a whole number"),
        ("age", "", "age must be a whole number"),
        ("phone", "1", "phone must be one of"),
        ("purpose", "Car_new", "purpose must be one of"),
    ]:
        applicant, error = cli.applicant_or_errors({**row, name: text})
        assert applicant is None and expected in error, (name, text, error)


def test_summary_counts_each_outcome_and_the_invalid_rows() -> None:
    scored = [{"decision": "approve"}] * 3 + [{"decision": "decline"}, {"error": "age ..."}]
    assert cli.summary(scored) == "approve 3 (60%), review 0 (0%), decline 1 (20%), invalid 1 (20%) of 5 rows"
    assert cli.summary([]) == "no rows"
