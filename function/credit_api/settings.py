"""The function's configuration, read from the environment once per cold start.

Every environment variable the function uses is named here and nowhere else, so the
template (``template.yaml``) and the code can be checked against one list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from credit_api.aws import Bounds

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "model"
"""``function/model``: the model shipped inside the Lambda bundle (``CodeUri: function/``)."""

ENVIRONMENT_VARIABLES = (
    "MODEL_BUCKET",
    "DECISIONS_TABLE",
    "IDEMPOTENCY_TABLE",
    "RISK_API_KEY_IDS",
    "MODEL_REFRESH_SECONDS",
    "DECISIONS_DB",
    "AWS_ENDPOINT_URL",
    "MODEL_DIR",
    "REPORTS_DIR",
)

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (a full batch of 1000 applicants is about 450 kB)."""

MAX_BATCH = 1000
"""Most applicants in one batch request."""


DECISION_RETENTION_DAYS = 800
"""Days a decision record is kept (``expires_at``, DynamoDB's TTL attribute): Regulation B
asks for 25 months after notice of action; 800 days is 26 months and a few days to spare."""

IDEMPOTENCY_HOURS = 24
"""How long an ``Idempotency-Key`` is remembered: a retry later than this is a new request."""

IDEMPOTENCY_STALE_SECONDS = 30.0
"""An idempotency claim still in progress after this long belongs to a crashed request (the
function times out after 15 s) and may be taken over by a retry."""


def _key_ids(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


class SettingsError(ValueError):
    """An environment variable holds a value the function cannot use: fail the cold start loudly."""


@dataclass(frozen=True)
class Settings:
    model_bucket: str | None = None
    decisions_table: str | None = None
    idempotency_table: str | None = None
    risk_api_key_ids: frozenset[str] = frozenset()
    """API key ids (the risk team's) that may read any decision and record any outcome."""
    model_refresh_seconds: float = 300.0
    decisions_db: Path = Path("var/decisions.sqlite3")
    aws_endpoint_url: str | None = None
    model_dir: Path = BUNDLED_MODEL_DIR
    reports_dir: Path = Path("reports")
    """Where ``GET /monitoring`` finds the reports without a bucket (``REPORTS_DIR``; relative to
    the working directory, so ``make run`` from the repository finds ``reports/monitoring/``)."""
    max_body_bytes: int = MAX_BODY_BYTES
    max_batch: int = MAX_BATCH
    aws: Bounds = field(default_factory=Bounds)
    """Timeouts, attempts and the per-request deadline for AWS calls (see :mod:`credit_api.aws`)."""
    champion_wait_seconds: float = 2.5
    """At a cold start, how long a request waits for the S3 champion before serving the bundled model
    (``CHAMPION_WAIT_SECONDS``; never longer than the request's AWS deadline)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); empty values count as unset."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def seconds(name: str, default: float) -> float:
            raw = get(name)
            try:
                value = float(raw) if raw is not None else default
            except ValueError:
                raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
            if not 0 <= value < float("inf"):
                raise SettingsError(f"{name} must be a non-negative number of seconds, got {raw!r}")
            return value

        return cls(
            model_bucket=get("MODEL_BUCKET"),
            decisions_table=get("DECISIONS_TABLE"),
            idempotency_table=get("IDEMPOTENCY_TABLE"),
            risk_api_key_ids=_key_ids(get("RISK_API_KEY_IDS")),
            model_refresh_seconds=seconds("MODEL_REFRESH_SECONDS", cls.model_refresh_seconds),
            champion_wait_seconds=seconds("CHAMPION_WAIT_SECONDS", cls.champion_wait_seconds),
            decisions_db=Path(get("DECISIONS_DB") or cls.decisions_db),
            aws_endpoint_url=get("AWS_ENDPOINT_URL"),
            model_dir=Path(get("MODEL_DIR") or BUNDLED_MODEL_DIR),
            reports_dir=Path(get("REPORTS_DIR") or cls.reports_dir),
        )
