"""bench/deployed.py: a tiny run of the deployed cold start against a moto server, and its section."""

from __future__ import annotations

import json

import pytest

from bench import deployed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result() -> dict:
    return deployed.measure(deployed.source_target(), cold_runs=1, requests=5)


def test_every_step_of_the_deployed_cold_start_is_timed(result: dict) -> None:
    bundled = json.loads((deployed.ROOT / "function" / "model" / "manifest.json").read_text())
    phases = result["phases"]
    assert phases["model_version"] == bundled["model_version"]  # the champion came from moto's S3
    assert len(result["cold"]) == 1 and result["cold"][0]["total_ms"] > result["cold"][0]["import_ms"] > 0
    for key, _label in deployed.PARTS:
        assert phases[key] > 0, key
    assert len(phases["warm_ms"]) == 5 and min(phases["warm_ms"]) > 0
    assert len(phases["after_restore_ms"]) == len(phases["first_after_restore_ms"]) == 5
    assert min(phases["first_after_restore_ms"]) > 0


def test_the_section_reports_the_measured_numbers_and_the_snapstart_target(result: dict) -> None:
    numbers = deployed.summary(result)
    assert numbers["ratio"] == pytest.approx(numbers["first_request_ms"] / numbers["warm_p50_ms"])
    text = deployed.section(result)
    assert text.startswith("## Deployed configuration")
    assert f"| {numbers['session_ms']:.1f} |" in text
    verdict = "met" if numbers["ratio"] <= deployed.TARGET_RATIO else "**missed**"
    assert f"({numbers['ratio']:.1f}x) | {verdict} |" in text
    assert result["target"] in text


def test_a_copy_without_bytecode_has_no_pyc_and_its_row_is_reported(result: dict, tmp_path) -> None:
    target = deployed.without_bytecode(deployed.source_target(), tmp_path)
    (code,) = target.code_dirs
    assert (code / "credit_api" / "main.py").is_file()
    assert not any(code.rglob("*.pyc"))
    text = deployed.section(result, no_bytecode=result)
    assert "without its bytecode" in text
