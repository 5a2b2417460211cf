"""checkov passes on template.yaml offline, and every check it skips is skipped there with a reason.

checkov lives in its own venv (``make checkov``; ``make test`` builds it through ``make static``)
because it pins boto3 and networkx below what the function uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from infra.template import ROOT, TEMPLATE

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV\w*)(?::\s*(.*))?$", re.MULTILINE)
OFFLINE = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
"""No guideline mapping download; no API key is given, so nothing goes to Prisma Cloud either."""


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.exists():
        message = f"{CHECKOV} is missing: run `make checkov`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BC_", "PRISMA_"))} | OFFLINE
    command = [str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download"]
    result = subprocess.run(
        [*command, "--output", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow  # checkov takes 8 s of CPU, mostly imports
def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] >= 40  # it did check the template (47 checks pass today)


@pytest.mark.slow  # checkov takes 8 s of CPU, mostly imports
def test_every_skip_is_reasoned_in_the_template_and_still_needed(report: dict[str, Any]) -> None:
    skips = SKIP_COMMENT.findall(TEMPLATE.read_text())
    assert skips, "expected the template's reasoned exceptions"
    assert all(len(reason.strip()) >= 20 for _, reason in skips), skips
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped == {check for check, _ in skips}  # a skip for a check that now passes is stale


def test_the_skip_pattern_reads_checkovs_comment_syntax() -> None:
    sample = (
        "    # checkov:skip=CKV_AWS_18: the log target cannot log to itself\n  # checkov:skip=CKV_AWS_1\n"
    )
    assert SKIP_COMMENT.findall(sample) == [
        ("CKV_AWS_18", "the log target cannot log to itself"),
        ("CKV_AWS_1", ""),
    ]
