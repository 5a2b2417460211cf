"""What the Lambda bundle imports and installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.support import ROOT

FORBIDDEN = ("sklearn", "pandas", "scipy", "skl2onnx", "training", "joblib", "matplotlib")
LOCAL_ONLY = {"uvicorn"}  # serves `make run`; the Lambda runtime calls the handler directly


def test_entry_module_imports_no_training_stack_and_no_boto3_without_aws() -> None:
    """Import ``credit_api.main`` in a clean interpreter and list what came with it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_BUCKET", "DECISIONS_TABLE")}
    code = "import json, sys; import credit_api.main; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    loaded = {m.split(".")[0] for m in modules}
    assert {"fastapi", "mangum", "onnxruntime", "aws_lambda_powertools"} <= loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
    assert "boto3" not in loaded  # made on first use of S3 or DynamoDB only
    assert "aws_xray_sdk.core" not in modules  # tracing is off here: no X-Ray SDK either


def test_function_sources_never_import_the_training_stack() -> None:
    for path in (ROOT / "function" / "credit_api").rglob("*.py"):
        text = path.read_text()
        for name in FORBIDDEN:
            assert f"import {name}" not in text and f"from {name}" not in text, (path.name, name)


def _pins() -> dict[str, Requirement]:
    lines = (ROOT / "function" / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name.lower(): r for r in reqs}


def test_requirements_pin_exactly_within_pyproject_ranges() -> None:
    project = tomllib.loads(Path(ROOT / "pyproject.toml").read_text())["project"]
    ranges = {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}
    pins = _pins()
    assert set(pins) == set(ranges) - LOCAL_ONLY
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{name} must be pinned exactly"
        assert ranges[name].specifier.contains(spec.version), f"{name}=={spec.version} outside {ranges[name]}"
        assert pin.extras == ranges[name].extras, name


def test_handler_runs_with_active_tracing(tmp_path: Path) -> None:
    """As deployed (``Tracing: Active``): the X-Ray SDK is loaded and the handler still answers.

    Segments go by UDP to an unused loopback port, as the SDK sends them to the Lambda daemon.
    """
    script = (
        "import json, sys\n"
        "from tests.support import LambdaContext, load_event\n"
        "from credit_api.main import handler\n"
        "response = handler(load_event('predict_stage'), LambdaContext())\n"
        "print(json.dumps({'status': response['statusCode'], 'xray': 'aws_xray_sdk.core' in sys.modules}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(ROOT / "function"),
            "AWS_LAMBDA_FUNCTION_NAME": "PredictFunction",
            "_X_AMZN_TRACE_ID": "Root=1-674b4a10-3b5e8d7f0c2a9e6b1d4f7a20;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2999",
            "DECISIONS_DB": str(tmp_path / "d.sqlite3"),
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"status": 200, "xray": True}
