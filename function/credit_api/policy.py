"""Decision policy and score scale: what a probability of default means for an application.

Shared by the function (each decision) and by ``training/`` (the economic evaluation
of the same policy on out-of-fold predictions), so the policy that is evaluated is the
policy that is served. numpy only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Policy(BaseModel):
    """Economic assumptions behind the cut-off; defaults documented in training's config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loss_given_default: float = Field(0.45, gt=0, le=1)
    annual_margin: float = Field(gt=0, lt=1)
    review_band: float = Field(ge=0, lt=0.5)
    sample_default_rate: float = Field(gt=0, lt=1)
    population_default_rate: float | None = Field(default=None, gt=0, lt=1)
    annual_applications: int = Field(gt=0)


class ScoreScale(BaseModel):
    """Points = base_score at base_odds (good:bad), plus points_to_double_odds per doubling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_score: float = 600.0
    base_odds: float = 50.0
    points_to_double_odds: float = 20.0
