"""Schemathesis against the app's own OpenAPI: generated requests, positive and negative, every operation.

Every answer must be a documented status with a body that matches the documented response
model, and never a 5xx. The number of cases per operation and mode comes from
``FUZZ_EXAMPLES`` (CI's default gives over 2,000 cases in all; ``make fuzz`` runs a longer
campaign). Runs in-process through ASGI against a fresh SQLite log and the bundled model.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from credit_api.api import create_app
from credit_api.settings import Settings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""What a refused schema-violating request may get: schemathesis's default list plus 413, which
a batch over ``maxItems`` (1000 applicants) can meet first, as the body limit answers before
validation. Every one of these is documented on the operations that can return it."""
CONFIG = SchemathesisConfig.from_str(
    f"[checks.negative_data_rejection]\nexpected-statuses = {REJECTIONS!r}\n".replace("'", '"')
)


def takes_input(operation: schemathesis.APIOperation) -> bool:
    return operation.method.upper() != "GET" or "{" in operation.path


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    db: Path = tmp_path_factory.mktemp("fuzz") / "decisions.sqlite3"
    return schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(Settings(decisions_db=db)), config=CONFIG
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_generated_requests_get_documented_answers(
    schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    seen: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue  # nothing to make invalid: GET /health and /model take no parameters

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=os.environ.get("FUZZ_RANDOM") is None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate()
            seen[response.status_code] += 1

        run()
    total = sum(seen.values())
    print(f"fuzz {mode.value}: {total} cases, statuses {dict(sorted(seen.items()))}")
    assert not [status for status in seen if status >= 500]
    assert total >= min(EXAMPLES, 50) * len(operations) // 2
