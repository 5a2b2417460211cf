"""EMF metrics as a function prints them in Lambda: a fresh process with its template environment.

Powertools reads the service and namespace when a module is imported, and the test session's own
environment (tests/conftest.py) is the API's; so the code runs in a child process whose
environment is exactly the function's (``infra.template.function_environment``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from infra.template import ROOT, Resolver, function_environment
from tests.support import emf_records


def emitted_metrics(code: str, payload: Any, resolver: Resolver, function: str) -> list[dict[str, Any]]:
    """The EMF records ``code`` prints, given ``payload`` as JSON on stdin, as ``function`` would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(function_environment(resolver, function))
    process = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(payload),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return emf_records(process.stdout)
