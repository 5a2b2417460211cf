"""Applicants in, assessed applications out: model, policy and reasons, without I/O.

Whatever the number of applicants, this is one onnxruntime run for the probabilities and
at most one more for the reasons, which only review and decline get (an approval needs no
adverse-action notice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from credit_api.model_store import LoadedModel
from credit_api.policy import decide_many
from credit_api.reasons import principal_reasons


def assess(model: LoadedModel, applicants: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One assessment per applicant, in order: probability, decision, score, grade, profit, reasons."""
    manifest = model.manifest
    raw = model.scorer.predict(applicants)
    decisions = decide_many(
        raw,
        [a["amount"] for a in applicants],
        [a["months_loan_duration"] for a in applicants],
        manifest.policy,
        manifest.score_scale,
    )
    adverse = [i for i, d in enumerate(decisions) if d.decision != "approve"]
    reasons: dict[int, list[dict[str, str]]] = {}
    if adverse:
        found = principal_reasons(
            model.scorer, [applicants[i] for i in adverse], raw[adverse], manifest.reason_reference
        )
        reasons = {
            i: [{"input": r.input, "label": r.label, "message": r.message} for r in row]
            for i, row in zip(adverse, found, strict=True)
        }
    return [
        {
            "probability_of_default": round(d.probability_of_default, 6),
            "decision": d.decision,
            "score": d.score,
            "risk_grade": d.risk_grade,
            "expected_profit": round(d.expected_profit, 2),
            "reasons": reasons.get(i, []),
        }
        for i, d in enumerate(decisions)
    ]
