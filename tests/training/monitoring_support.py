"""Decision records as the function writes them, scored by the bundled champion, for monitoring tests.

Each row of ``data/credit.csv`` becomes a decision (the champion's probability, decision, score
and grade, through the served policy), spread evenly over ``days`` before ``end``; an outcome
is drawn from the record's own probability of default, so a calibrated log has calibrated
outcomes unless a test bends them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from credit_api.model_store import LoadedModel, load_bundled
from credit_api.policy import decide_columns
from credit_api.schema import FEATURE_NAMES

from training.data import load

MODEL_DIR = Path(__file__).resolve().parents[2] / "function" / "model"
END = datetime(2026, 12, 1, tzinfo=UTC)


@cache
def champion() -> LoadedModel:
    return load_bundled(MODEL_DIR)


@cache
def _scored() -> tuple[list[dict[str, Any]], np.ndarray]:
    frame = load()
    rows = frame[list(FEATURE_NAMES)].to_dict("records")
    return rows, champion().scorer.predict(rows)


def records(
    *,
    days: int = 600,
    end: datetime = END,
    seed: int = 7,
    with_outcomes: bool = True,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """``repeat`` x 1000 records over the ``days`` before ``end``, oldest first."""
    model = champion()
    rows, raw = _scored()
    rows, raw = rows * repeat, np.tile(raw, repeat)
    columns = decide_columns(
        raw,
        [r["amount"] for r in rows],
        [r["months_loan_duration"] for r in rows],
        model.manifest.policy,
        model.manifest.score_scale,
    )
    rng = np.random.default_rng(seed)
    step = timedelta(days=days) / len(rows)
    found = []
    for i, inputs in enumerate(rows):
        pd_ = float(columns.probability_of_default[i])
        at = end - timedelta(days=days) + step * i
        outcome = None
        if with_outcomes and columns.decision[i] == "approve":
            outcome = {
                "defaulted": bool(rng.random() < pd_),
                "observed_at": at.date().isoformat(),
                "recorded_at": at.isoformat(),
            }
        found.append(
            {
                "decision_id": str(uuid.UUID(int=rng.integers(0, 2**63).item() + (i << 64), version=4)),
                "created_at": at.isoformat().replace("+00:00", "Z"),
                "model_version": model.version,
                "policy_version": "policy-0123456789ab",
                "request_id": f"req-{i}",
                "idempotency_key": None,
                "request_hash": None,
                "caller": "",
                "expires_at": int((at + timedelta(days=3650)).timestamp()),
                "inputs": inputs,
                "probability_of_default": pd_,
                "decision": str(columns.decision[i]),
                "score": int(columns.score[i]),
                "risk_grade": str(columns.risk_grade[i]),
                "expected_profit": float(columns.expected_profit[i]),
                "reasons": [],
                "outcome": outcome,
                "shadow": None,
            }
        )
    return found
