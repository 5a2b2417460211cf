"""Decision policy and score scale: what a probability of default means for an application.

Shared by the function (each decision) and by ``training/`` (the economic evaluation
of the same policy on out-of-fold predictions), so the policy that is evaluated is the
policy that is served. numpy + pydantic only.

The economics of one loan of ``amount`` over ``months``:

- a good loan earns ``g * amount`` with ``g = annual_margin * months / 12``;
- a bad loan loses ``loss_given_default * amount``;
- so the expected profit is ``amount * ((1 - p) * g - p * LGD)``, positive exactly when
  ``p < p* = g / (g + LGD)``, the break-even probability of default.

The model is trained on a sample whose default rate (``sample_default_rate``) need not be the
rate of the applicants it will see. With ``population_default_rate`` set, probabilities are first
moved to the population by the prior-shift (Bayes odds) correction: the default odds are
multiplied by ``[pi / (1 - pi)] / [rho / (1 - rho)]`` (population ``pi``, sample ``rho``). That
corrected probability is the one every decision, score and grade below uses.

Review band: an application is referred to a person when its expected profit is within
``review_band`` times the profit of a good loan of either side of zero, i.e. when
``|p - p*| <= review_band * p*``. A band relative to ``p*`` keeps the same meaning for a 6-month
and a 60-month loan, whose break-even probabilities differ several-fold.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, model_validator

DecisionLabel = Literal["approve", "review", "decline"]
GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E")
"""Risk grades, best first. See :meth:`ScoreScale.grade`."""

PROBABILITY_FLOOR = 1e-6
"""Probabilities are clipped to ``[floor, 1 - floor]`` before taking odds, so scores stay finite."""


class Policy(BaseModel):
    """Economic assumptions behind the cut-off; defaults documented in ``training/config.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loss_given_default: float = Field(0.45, gt=0, le=1, description="share of the amount lost on a bad loan")
    annual_margin: float = Field(gt=0, lt=1, description="net interest margin per year on the amount")
    review_band: float = Field(
        ge=0, lt=1, description="half-width of the review band, as a share of the break-even probability"
    )
    sample_default_rate: float = Field(gt=0, lt=1, description="default rate of the training sample")
    population_default_rate: float | None = Field(
        default=None, gt=0, lt=1, description="default rate of the applicant population; None: no correction"
    )
    annual_applications: int = Field(gt=0, description="applications a year, to scale money figures")


class ScoreScale(BaseModel):
    """Points = base_score at base_odds (good:bad), plus points_to_double_odds per doubling."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0, description="good:bad odds at base_score; its log is taken")
    points_to_double_odds: float = Field(20.0, gt=0)

    def points(self, probabilities: ArrayLike) -> np.ndarray:
        """Score (float points) for probabilities of default: higher is safer."""
        p = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        factor = self.points_to_double_odds / math.log(2)
        return self.base_score + factor * (np.log((1 - p) / p) - math.log(self.base_odds))

    def grades(self, scores: ArrayLike) -> np.ndarray:
        """Grade per score: A at or above base_score, then one grade per halving of the odds.

        With the defaults: A >= 600 (good:bad at least 50:1), B >= 580 (25:1), C >= 560 (12.5:1),
        D >= 540 (6.25:1), E below. Monotone: a higher score never gets a worse grade.
        """
        below = (self.base_score - np.asarray(scores, dtype=np.float64)) / self.points_to_double_odds
        index = np.clip(np.ceil(below), 0, len(GRADES) - 1).astype(np.int64)
        return np.asarray(GRADES)[index]


DEFAULT_SCALE = ScoreScale()

POLICY_VERSION_PATTERN = r"^policy-[0-9a-f]{12}$"


@lru_cache(maxsize=32)
def policy_version(policy: Policy, scale: ScoreScale) -> str:
    """``policy-<sha12>`` of the canonical JSON of the policy and score scale: the same numbers
    always give the same version, whoever publishes them and whenever, and any change gives another.

    Canonical: keys sorted, no whitespace, every field present (defaults included). Cached, as the
    function derives it for the manifest's policy on every request that serves it.
    """
    content = {"policy": policy.model_dump(mode="json"), "score_scale": scale.model_dump(mode="json")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return f"policy-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


class PolicyDocument(BaseModel):
    """A published decision policy: the numbers (:class:`Policy`, :class:`ScoreScale`) and who set
    them, when and why. Its version is derived from the numbers, so a document cannot claim a
    version its content does not have, and republishing the same numbers names the same version.

    Validation is strict (unknown fields refused, rates strictly within (0, 1), the review band
    within [0, 1) so that ``p* - half`` stays above 0 and the band is ordered, finite scale):
    a document failing it is never served.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    policy_version: str = Field(pattern=POLICY_VERSION_PATTERN, description="policy-<sha12> of the content")
    policy: Policy
    score_scale: ScoreScale = DEFAULT_SCALE
    published_at: datetime
    by: str = Field(min_length=1, max_length=200, description="who published it (a person or a run)")
    reason: str = Field(min_length=1, max_length=2000, description="why the policy changed")

    @model_validator(mode="after")
    def _version_matches_content(self) -> PolicyDocument:
        derived = policy_version(self.policy, self.score_scale)
        if self.policy_version != derived:
            raise ValueError(
                f"policy_version {self.policy_version!r} does not match its content ({derived!r})"
            )
        return self

    @classmethod
    def create(
        cls, policy: Policy, score_scale: ScoreScale, *, by: str, reason: str, published_at: datetime
    ) -> PolicyDocument:
        """A new document for these numbers, its version derived from them."""
        return cls(
            policy_version=policy_version(policy, score_scale),
            policy=policy,
            score_scale=score_scale,
            published_at=published_at,
            by=by,
            reason=reason,
        )


class Decision(BaseModel):
    """The outcome for one application, with the number it was based on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probability_of_default: float = Field(description="after the population correction, if configured")
    decision: DecisionLabel
    score: int = Field(description="points from the corrected probability; higher is safer")
    risk_grade: str = Field(description="A (best) to E, by score band")
    expected_profit: float = Field(description="expected profit of the loan, in the amount's currency")
    break_even_probability: float = Field(description="probability of default at which profit is zero")


def correct_to_population(probabilities: ArrayLike, policy: Policy) -> np.ndarray:
    """Prior-shift correction from the sample default rate to the population's (identity when None)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if policy.population_default_rate is None:
        return p.copy()
    pi, rho = policy.population_default_rate, policy.sample_default_rate
    bad, good = pi / rho, (1 - pi) / (1 - rho)
    return bad * p / (bad * p + good * (1 - p))


def good_loan_margin(months: ArrayLike, policy: Policy) -> np.ndarray:
    """``g``: profit of a good loan per unit of amount."""
    return policy.annual_margin * np.asarray(months, dtype=np.float64) / 12.0


def break_even(months: ArrayLike, policy: Policy) -> np.ndarray:
    """``p* = g / (g + LGD)``: the probability of default at which expected profit is zero."""
    g = good_loan_margin(months, policy)
    return g / (g + policy.loss_given_default)


def expected_profit(
    probabilities: ArrayLike, amounts: ArrayLike, months: ArrayLike, policy: Policy
) -> np.ndarray:
    """``amount * ((1 - p) * g - p * LGD)`` for (already corrected) probabilities of default."""
    p = np.asarray(probabilities, dtype=np.float64)
    g = good_loan_margin(months, policy)
    return np.asarray(amounts, dtype=np.float64) * ((1 - p) * g - p * policy.loss_given_default)


_DECISION_LABELS = np.array(["approve", "review", "decline"])
"""Indexed by 1 (review), less one below the band, plus one above it (NaN, in neither, stays a
review): one array lookup, cheaper than two nested ``np.where`` over strings on one applicant."""


def decisions_for(probabilities: ArrayLike, months: ArrayLike, policy: Policy) -> np.ndarray:
    """approve / review / decline for (already corrected) probabilities; the review band is inclusive."""
    p = np.asarray(probabilities, dtype=np.float64)
    cut = break_even(months, policy)
    half = policy.review_band * cut
    return _DECISION_LABELS[1 - (p < cut - half).astype(np.intp) + (p > cut + half)]


@dataclass(frozen=True)
class Decisions:
    """Decisions for many applications as columns (numpy arrays, one entry per application).

    The serving path reads these directly: building a validated :class:`Decision` per row cost
    more than the policy itself on a batch of 1000.
    """

    probability_of_default: np.ndarray
    decision: np.ndarray
    score: np.ndarray
    risk_grade: np.ndarray
    expected_profit: np.ndarray
    break_even_probability: np.ndarray

    def __len__(self) -> int:
        return int(self.decision.shape[0])


def decide_columns(
    probabilities: ArrayLike,
    amounts: ArrayLike,
    months: ArrayLike,
    policy: Policy,
    scale: ScoreScale = DEFAULT_SCALE,
) -> Decisions:
    """Decisions for model probabilities (sample scale), vectorised; one per application."""
    raw = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(raw)) or np.any((raw < 0) | (raw > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    amounts_ = np.broadcast_to(np.asarray(amounts, dtype=np.float64).reshape(-1), raw.shape)
    months_ = np.broadcast_to(np.asarray(months, dtype=np.float64).reshape(-1), raw.shape)
    p = correct_to_population(raw, policy)
    scores = np.rint(scale.points(p)).astype(np.int64)
    return Decisions(
        probability_of_default=p,
        decision=decisions_for(p, months_, policy),
        score=scores,
        risk_grade=scale.grades(scores),
        expected_profit=expected_profit(p, amounts_, months_, policy),
        break_even_probability=break_even(months_, policy),
    )


def decide_many(
    probabilities: ArrayLike,
    amounts: ArrayLike,
    months: ArrayLike,
    policy: Policy,
    scale: ScoreScale = DEFAULT_SCALE,
) -> list[Decision]:
    """:func:`decide_columns` as one validated :class:`Decision` per application."""
    columns = decide_columns(probabilities, amounts, months, policy, scale)
    names = [column.name for column in fields(Decisions)]
    values = zip(*(getattr(columns, name).tolist() for name in names), strict=True)
    return [Decision(**dict(zip(names, row, strict=True))) for row in values]


def decide(
    probability: float, amount: float, months: float, policy: Policy, scale: ScoreScale = DEFAULT_SCALE
) -> Decision:
    """The decision for one application: :func:`decide_many` for a single row."""
    return decide_many([probability], [amount], [months], policy, scale)[0]
