"""Applicants in, assessed applications out: model, policy and reasons, without I/O.

Whatever the number of applicants, this is one onnxruntime run for the probabilities and
at most one more for the reasons, which only review and decline get (an approval needs no
adverse-action notice). A shadow challenger (:func:`shadow_score`) is one more run on the
same input tensors, with a probability and a decision only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_api.model_store import LoadedModel
from credit_api.policy import correct_to_population, decide_columns, decisions_for
from credit_api.policy_store import ServedPolicy
from credit_api.reasons import notices


def assess(
    model: LoadedModel,
    applicants: Sequence[Mapping[str, Any]],
    policy: ServedPolicy | None = None,
    feed: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One assessment per applicant, in order: probability, decision, score, grade, profit, reasons.

    ``policy``: the one in force (published apart from the model); None: the model's manifest's.
    ``feed`` is ``model.scorer.feed(applicants)`` when the caller built it already (to score
    a shadow model on the same tensors).
    """
    manifest = model.manifest
    served = policy or ServedPolicy.of_manifest(manifest)
    feed = feed if feed is not None else model.scorer.feed(applicants)
    raw = model.scorer.score(feed)  # with the age rule (credit_api.age_rule)
    decided = decide_columns(
        raw,
        [a["amount"] for a in applicants],
        [a["months_loan_duration"] for a in applicants],
        served.policy,
        served.score_scale,
    )
    choices = decided.decision.tolist()
    adverse = [i for i, d in enumerate(choices) if d != "approve"]
    reasons: dict[int, list[dict[str, str]]] = {}
    if adverse:
        rows = [applicants[i] for i in adverse]
        found = notices(model.scorer, rows, raw[adverse], manifest.reason_reference)
        reasons = dict(zip(adverse, found, strict=True))
    return [
        {
            "probability_of_default": p,
            "decision": decision,
            "score": score,
            "risk_grade": grade,
            "expected_profit": profit,
            "reasons": reasons.get(i, []),
        }
        for i, (p, decision, score, grade, profit) in enumerate(
            zip(
                decided.probability_of_default.round(6).tolist(),
                choices,
                decided.score.tolist(),
                decided.risk_grade.tolist(),
                decided.expected_profit.round(2).tolist(),
                strict=True,
            )
        )
    ]


def shadow_score(
    shadow: LoadedModel,
    champion: LoadedModel,
    feed: Mapping[str, np.ndarray],
    applicants: Sequence[Mapping[str, Any]],
    served: ServedPolicy | None = None,
) -> list[dict[str, Any]]:
    """The shadow's ``{model_version, probability_of_default, decision}`` for each applicant.

    ``feed`` is the champion's input tensors for ``applicants``; it is reused unless the two
    graphs declare different input types. The shadow is decided under the policy it would get
    if promoted: a published policy (``served``) applies to whichever model is champion; with
    none published, each model brings its own manifest's.
    """
    if shadow.scorer.input_types != champion.scorer.input_types:
        feed = shadow.scorer.feed(applicants)
    raw = shadow.scorer.score(feed)  # the age rule binds a challenger too
    if not all(0.0 <= x <= 1.0 for x in raw.tolist()):  # NaN fails it too; no numpy call for 1 row
        raise ValueError("the shadow returned probabilities outside [0, 1]")
    policy = served.policy if served is not None and served.published else shadow.manifest.policy
    p = correct_to_population(raw, policy)
    decisions = decisions_for(p, [a["months_loan_duration"] for a in applicants], policy)
    version = shadow.version
    return [
        {"model_version": version, "probability_of_default": probability, "decision": decision}
        for probability, decision in zip(p.round(6).tolist(), decisions.tolist(), strict=True)
    ]
