"""Settings from the environment, tracing detection, and the app under uvicorn (``make run``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from credit_api.observability import tracing_enabled
from credit_api.schema import EXAMPLE_APPLICANT
from credit_api.settings import BUNDLED_MODEL_DIR, Settings, SettingsError

from tests.support import ROOT


def test_settings_defaults_and_overrides() -> None:
    default = Settings.from_env({})
    assert default.model_bucket is None and default.decisions_table is None
    assert default.model_refresh_seconds == 300
    assert default.decisions_db == Path("var/decisions.sqlite3")
    assert default.model_dir == BUNDLED_MODEL_DIR
    configured = Settings.from_env(
        {"MODEL_BUCKET": "b", "DECISIONS_TABLE": "t", "MODEL_REFRESH_SECONDS": "60", "MODEL_DIR": "/m"}
    )
    assert (configured.model_bucket, configured.decisions_table) == ("b", "t")
    assert configured.model_refresh_seconds == 60 and configured.model_dir == Path("/m")
    assert Settings.from_env({"MODEL_BUCKET": "  "}).model_bucket is None


@pytest.mark.parametrize("name", ["MODEL_REFRESH_SECONDS", "CHAMPION_WAIT_SECONDS"])
@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_bad_intervals_fail_the_cold_start(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_champion_wait_is_configurable() -> None:
    assert Settings.from_env({}).champion_wait_seconds == 2.5
    assert Settings.from_env({"CHAMPION_WAIT_SECONDS": "8"}).champion_wait_seconds == 8


def test_tracing_follows_powertools_rules() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task"})
    assert not tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DECISIONS_DB": str(tmp_path / "d.sqlite3")}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "credit_api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    assert json.load(response)["model_loaded"] is True
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{base}/predict",
            data=json.dumps(EXAMPLE_APPLICANT).encode(),
            headers={"Content-Type": "application/json", "X-Request-Id": "local-1"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.load(response)
            assert response.headers["X-Request-Id"] == "local-1"
        with urllib.request.urlopen(f"{base}/decisions/{answer['decision_id']}", timeout=5) as response:
            assert json.load(response)["request_id"] == "local-1"
        with urllib.request.urlopen(f"{base}/", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/html")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert '"PredictionLatencyMs"' in output  # EMF flushed per request outside Lambda
    assert '"correlation_id":"local-1"' in output
