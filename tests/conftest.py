"""Test environment, set before any test module imports the function.

The function reads its settings once at import, so the environment is fixed here: no real
AWS (fake credentials, a region, tracing off), Powertools named, and the default app's
SQLite decision log in a temporary directory rather than ``var/`` of the work tree.
"""

from __future__ import annotations

import os
import tempfile

import pytest

_TMP = tempfile.mkdtemp(prefix="credit-api-tests-")

for _name in ("MODEL_BUCKET", "DECISIONS_TABLE", "AWS_ENDPOINT_URL", "MODEL_DIR", "AWS_PROFILE"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "POWERTOOLS_SERVICE_NAME": "credit-api",
        "POWERTOOLS_METRICS_NAMESPACE": "LoanDefault",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_DEV": "false",
        "LOG_LEVEL": "INFO",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "DECISIONS_DB": os.path.join(_TMP, "decisions.sqlite3"),
        "MODEL_REFRESH_SECONDS": "300",
    }
)


@pytest.fixture
def lambda_context():
    from tests.support import LambdaContext

    return LambdaContext()
