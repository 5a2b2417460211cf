"""The benchmark's obvious build (scikit-learn + pandas behind the same app) must keep working
as the service changes: it is only ever run by ``make bench``, so it could break unseen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.baseline_model import train
from bench.run import MODEL_DIR, ROOT, child_env

pytestmark = pytest.mark.slow


def test_the_obvious_build_is_the_champion_and_answers_as_the_function(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.joblib"
    name, difference = train(MODEL_DIR, pipeline)
    assert "the champion, rebuilt" in name
    assert difference < 1e-5, "the baseline must score as the served model does"
    env = child_env(tmp_path, pipeline) | {"DECISIONS_DB": str(tmp_path / "decisions.sqlite3")}
    for impl in ("baseline", "function"):
        out = tmp_path / f"{impl}.json"
        subprocess.run(  # a non-200 answer makes the child exit non-zero
            [sys.executable, "-m", "bench.child", "cold", impl, str(out)], cwd=ROOT, env=env, check=True
        )
        assert json.loads(out.read_text())["first_ms"] > 0
