"""``sam build PredictFunction`` works without a container, fits the budget, and the built bundle runs alone.

Docker cannot pull the Lambda images here, so ``sam local invoke`` cannot run. In its place
each event of ``events/`` goes to the *built* artifact the way ``sam local invoke`` sends it:
a fresh python3.12 process per event (a cold start each), whose import path is only
``.aws-sam/build/PredictFunction`` and the standard library, with the handler string and the
environment read from ``template.yaml`` and ``infra/env.json``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.template import (
    ROOT,
    Resolver,
    function_environment,
    function_property,
    load_env_json,
    sam_local_environment,
)
from tests.function.test_events import EXPECTED_STATUS
from tests.support import for_decision, load_event

pytestmark = pytest.mark.slow
BUILD_DIR = ROOT / ".aws-sam" / "build"
FUNCTION = "PredictFunction"
MIB = 2**20
BUDGET_MIB = 180
"""The Lambda limit is 250 MiB unzipped; the bundle is mostly onnxruntime and numpy.

The shipped bytecode (function/Makefile) adds about 15 MiB; pruning what the function never
loads (numpy's tests, onnxruntime's offline tools) takes back 12: 167 MiB before, 171 after."""
FORBIDDEN = {"sklearn", "pandas", "training", "scipy", "skl2onnx", "uvicorn"}


@pytest.fixture(scope="module")
def built(sam_bin: Path, tool_env: dict[str, str]) -> Iterator[Path]:
    """``sam build PredictFunction``: only the zip function (the retrain image needs Docker)."""
    started = time.monotonic()
    result = subprocess.run(
        [str(sam_bin / "sam"), "build", FUNCTION],
        cwd=ROOT,
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"\nsam build {FUNCTION}: {time.monotonic() - started:.1f} s")
    yield BUILD_DIR / FUNCTION


@pytest.fixture(scope="module")
def runtime_dir(built: Path, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Stand-in for the runtime's ``/var/runtime`` (boto3), needed only if the bundle leaves boto3 out."""
    if (built / "boto3").is_dir():
        return []
    target = tmp_path_factory.mktemp("var-runtime")
    subprocess.run(
        ["python3.12", "-m", "pip", "install", "--quiet", "--target", str(target), "boto3>=1.44,<1.45"],
        env=tool_env,
        check=True,
        timeout=600,
    )
    return [str(target)]


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_built_bundle_fits_the_size_budget(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size = tree_size(built)
    largest = sorted(
        ((tree_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in built.iterdir()), reverse=True
    )
    with capsys.disabled():
        print(f"\n{FUNCTION} unzipped: {size / MIB:.1f} MiB ({size:,} bytes); budget {BUDGET_MIB} MiB")
        print("largest: " + ", ".join(f"{name} {bytes_ / MIB:.1f}" for bytes_, name in largest[:6]))
    assert (built / "credit_api" / "main.py").is_file() and (built / "model" / "model.onnx").is_file()
    assert size <= BUDGET_MIB * MIB, f"{size / MIB:.1f} MiB > {BUDGET_MIB} MiB; largest: {largest[:6]}"


def lambda_environment(
    template: dict[str, Any], variables: dict[str, str], tool_env: dict[str, str]
) -> dict[str, str]:
    """What Lambda (and ``sam local``) adds to the function's own variables, with dummy credentials."""
    return {
        **variables,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function_property(template, FUNCTION, "MemorySize")),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function_property(template, FUNCTION, "Timeout")),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SAM_LOCAL": "true",
        "TZ": ":UTC",
        "PATH": tool_env["PATH"],
        "PYENV_VERSION": tool_env["PYENV_VERSION"],
    }


def invoke_built(
    built: Path, handler: str, event: Path, env: dict[str, str], out: Path, runtime: list[str]
) -> dict[str, Any]:
    command = [
        "python3.12",
        "-I",
        "-S",
        "-B",  # /var/task is read-only in Lambda: no .pyc written into the bundle
        str(ROOT / "infra" / "invoke_built.py"),
        str(built),
        handler,
        str(event),
    ]
    result = subprocess.run(
        [*command, str(out), *runtime], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(out.read_text())
    answer["stdout"] = result.stdout
    return answer


def event_file(name: str, answers: dict[str, Any], tmp_path: Path) -> Path:
    """``events/<name>.json``; the decision and outcome events about the id the predict event was given."""
    if name not in ("decision", "outcome") or "predict" not in answers:
        return ROOT / "events" / f"{name}.json"
    decision_id = json.loads(answers["predict"]["response"]["body"])["decision_id"]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(for_decision(load_event(name), decision_id)))
    return path


def check_bundle_alone(answer: dict[str, Any]) -> None:
    assert answer["foreign_modules"] == []
    assert FORBIDDEN.isdisjoint(answer["top_level_modules"])


def test_every_event_through_the_built_bundle_as_sam_local_invoke_would(
    built: Path, runtime_dir: list[str], template: dict[str, Any], tool_env: dict[str, str], tmp_path: Path
) -> None:
    """The template's handler and environment with env.json's overrides: bundled model, SQLite log."""
    names = ("ModelBucket", "DecisionsTable", "IdempotencyTable", "RiskTeamApiKey")
    resolver = Resolver(template, names={name: name for name in names})
    variables = sam_local_environment(resolver, FUNCTION, load_env_json())
    assert variables["DECISIONS_DB"].startswith("/tmp/")
    variables["DECISIONS_DB"] = str(tmp_path / "decisions.sqlite3")  # this machine's /tmp is shared
    env = lambda_environment(template, variables, tool_env)
    handler = function_property(template, FUNCTION, "Handler")
    answers: dict[str, Any] = {}
    for name, status in EXPECTED_STATUS.items():
        event = event_file(name, answers, tmp_path)
        answer = invoke_built(built, handler, event, env, tmp_path / "out.json", runtime_dir)
        response = answer["response"]
        assert response["statusCode"] == status, (name, response["body"][:500])
        assert "Traceback" not in response["body"]
        check_bundle_alone(answer)
        answers[name] = answer
    predicted = json.loads(answers["predict"]["response"]["body"])
    decision = json.loads(answers["decision"]["response"]["body"])
    assert decision["decision_id"] == predicted["decision_id"]
    assert decision["outcome"] is None
    outcome = json.loads(answers["outcome"]["response"]["body"])
    assert outcome["outcome"]["defaulted"] is True
    health = json.loads(answers["health"]["response"]["body"])
    assert health["decision_log"] == "sqlite" and health["source"].startswith("bundled")
    assert "<html" in answers["page"]["response"]["body"].lower()
    assert "/predict" in json.loads(answers["openapi"]["response"]["body"])["paths"]
    errors = json.loads(answers["predict_bad_request"]["response"]["body"])["errors"]
    assert errors and all(e["field"] for e in errors)
    emf = [
        json.loads(line) for line in answers["predict"]["stdout"].splitlines() if line.startswith('{"_aws"')
    ]
    assert any(
        m["Name"] == "ModelLoadTimeMs"
        for r in emf
        for d in r["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    )


def test_built_bundle_against_the_local_stack(
    built: Path, runtime_dir: list[str], template: dict[str, Any], tool_env: dict[str, str], tmp_path: Path
) -> None:
    """The deployed configuration: model from S3 through the pointer, decisions in DynamoDB (moto)."""
    from infra.local_stack import clients, running

    with running(port=0) as stack:
        resolver = Resolver(template, names=stack.names.as_refs())
        variables = function_environment(resolver, FUNCTION)
        assert variables["MODEL_BUCKET"] == stack.names.bucket
        env = lambda_environment(template, variables, tool_env) | {"AWS_ENDPOINT_URL": stack.endpoint_url}
        # Each event is a fresh process, so a loaded machine can take longer than the deployed
        # 2.5 s to fetch the champion; the fallback itself is tested in tests/function.
        env["CHAMPION_WAIT_SECONDS"] = "12"
        handler = function_property(template, FUNCTION, "Handler")
        responses: dict[str, Any] = {}
        answers: dict[str, Any] = {}
        for name in ("predict", "decision", "outcome", "predict_batch", "health"):
            answer = invoke_built(
                built, handler, event_file(name, answers, tmp_path), env, tmp_path / "out.json", runtime_dir
            )
            answers[name] = answer
            check_bundle_alone(answer)
            assert answer["response"]["statusCode"] == 200, (name, answer["response"]["body"][:500])
            responses[name] = json.loads(answer["response"]["body"])
        health = responses["health"]
        assert health["decision_log"] == "dynamodb"
        assert health["source"] == f"s3://{stack.names.bucket}/{stack.pointer['key']}"
        assert health["model_version"] == stack.pointer["model_version"]
        _, dynamodb = clients(stack.endpoint_url)
        stored = dynamodb.get_item(
            TableName=stack.names.table, Key={"decision_id": {"S": responses["predict"]["decision_id"]}}
        )["Item"]
        assert stored["outcome"]["M"]["defaulted"] == {"BOOL": True}
        count = dynamodb.scan(TableName=stack.names.table, Select="COUNT")["Count"]
        assert count == 1 + len(responses["predict_batch"]["results"])


def test_the_built_bundle_runs_the_portfolio_worker_and_assembler(
    built: Path, runtime_dir: list[str], template: dict[str, Any], tool_env: dict[str, str], tmp_path: Path
) -> None:
    """The file flows' functions share PredictFunction's CodeUri: the same bundle, other handlers."""
    from infra.local_stack import clients, running

    with running(port=0) as stack:
        s3, _ = clients(stack.endpoint_url)
        batch = load_event("portfolio_batch")
        rows = [item["values"] for item in batch["Items"]]
        body = ",".join(rows[0]) + "\n" + "".join(",".join(r.values()) + "\n" for r in rows)
        key = batch["BatchInput"]["key"]
        etag = s3.put_object(Bucket=stack.names.bucket, Key=key, Body=body.encode())["ETag"].strip('"')
        source = {"bucket": stack.names.bucket, "key": key, "etag": etag}
        batch["BatchInput"] = source
        answers = {}
        for function, event in (
            ("PortfolioWorkerFunction", batch),
            ("PortfolioAssemblerFunction", {**load_event("portfolio_assemble"), **source}),
        ):
            resolver = Resolver(template, names=stack.names.as_refs())
            variables = function_environment(resolver, function) | {"CHAMPION_WAIT_SECONDS": "12"}
            env = lambda_environment(template, variables, tool_env) | {"AWS_ENDPOINT_URL": stack.endpoint_url}
            path = tmp_path / f"{function}.json"
            path.write_text(json.dumps(event))
            handler = function_property(template, function, "Handler")
            answer = invoke_built(built, handler, path, env, tmp_path / "out.json", runtime_dir)
            check_bundle_alone(answer)
            answers[function] = answer["response"]
    assert answers["PortfolioWorkerFunction"]["error_rows"] == 1
    summary = answers["PortfolioAssemblerFunction"]
    assert (summary["rows"], summary["results"], summary["error_rows"]) == (3, 2, 1)
    assert summary["versions"][0]["model_version"] == stack.pointer["model_version"]


PYC_CHECK = """
import importlib.util, pathlib, sys
root = pathlib.Path(sys.argv[1])
sources = [p for p in root.rglob("*.py")]
bad = []
for source in sources:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    head = cached.read_bytes()[:8] if cached.is_file() else b""
    if head[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(head[4:8], "little") != 0b01:
        bad.append(str(source.relative_to(root)))
print(len(sources), len(bad), *bad[:10])
"""
"""For each .py of the bundle: a pyc in ``__pycache__`` with python3.12's magic number and the
unchecked-hash flag (PEP 552: bit 0 hash-based, bit 1 check the source; 0b01)."""


def test_every_module_of_the_bundle_ships_unchecked_hash_bytecode_for_python312(
    built: Path, tool_env: dict[str, str]
) -> None:
    """Lambda's /var/task is read-only: without bytecode each cold start compiles every module
    (2.1 s against 0.92 s, measured through the built bundle against a moto server). Unchecked
    hash, because a deploy does not keep the sources' times, which timestamp pycs are checked by."""
    result = subprocess.run(
        ["python3.12", "-I", "-c", PYC_CHECK, str(built)],
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    sources, bad, *examples = result.stdout.split()
    assert int(sources) > 1000  # the dependencies, not only credit_api
    assert int(bad) == 0, examples
