"""Applicants in, assessed applications out: model, policy and reasons, without I/O.

Whatever the number of applicants, this is one onnxruntime run for the probabilities and
at most one more for the reasons, which only review and decline get (an approval needs no
adverse-action notice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from credit_api.model_store import LoadedModel
from credit_api.policy import decide_columns
from credit_api.reasons import notices


def assess(model: LoadedModel, applicants: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One assessment per applicant, in order: probability, decision, score, grade, profit, reasons."""
    manifest = model.manifest
    raw = model.scorer.score_rows(applicants)  # with the age rule (credit_api.age_rule)
    decided = decide_columns(
        raw,
        [a["amount"] for a in applicants],
        [a["months_loan_duration"] for a in applicants],
        manifest.policy,
        manifest.score_scale,
    )
    verdicts = decided.decision.tolist()
    adverse = [i for i, d in enumerate(verdicts) if d != "approve"]
    reasons: dict[int, list[dict[str, str]]] = {}
    if adverse:
        rows = [applicants[i] for i in adverse]
        found = notices(model.scorer, rows, raw[adverse], manifest.reason_reference)
        reasons = dict(zip(adverse, found, strict=True))
    return [
        {
            "probability_of_default": p,
            "decision": verdict,
            "score": score,
            "risk_grade": grade,
            "expected_profit": profit,
            "reasons": reasons.get(i, []),
        }
        for i, (p, verdict, score, grade, profit) in enumerate(
            zip(
                decided.probability_of_default.round(6).tolist(),
                verdicts,
                decided.score.tolist(),
                decided.risk_grade.tolist(),
                decided.expected_profit.round(2).tolist(),
                strict=True,
            )
        )
    ]
