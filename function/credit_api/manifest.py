"""The model manifest: everything the function needs to know about a model, beside ``model.onnx``.

Written by ``training/export.py``, read by the function at load time (and checked: the
ONNX sha256 and the schema hash must match before a model is served).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from credit_api.policy import Policy, ScoreScale

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


class Distribution(BaseModel):
    """Reference distribution of one input (or of the score) in the training data, for PSI drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["categorical", "numeric"]
    bins: list[str] | list[float] = Field(
        description="category codes, or the numeric bin edges (len(shares) + 1)"
    )
    shares: list[float]


class AgeApproval(BaseModel):
    """The model's approval rate per age band, as the retrain's fairness gate measures a challenger.

    From the model's out-of-fold probabilities on its own training rows, through the manifest's
    policy (``training.fairness.age_band_approval``): out of fold, because a model scored on its
    training rows looks sharper than it serves, so the gate can compare a challenger's out-of-fold
    ratio with its champion's like with like. Read by the retrain only; the function ignores it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: dict[str, float] = Field(description="approval rate per age band with at least min_band_rows rows")
    rows: dict[str, int] = Field(description="training rows per age band, every band")
    ratio: float | None = Field(
        description="lowest over highest rate; None with fewer than two bands or none approved"
    )
    min_band_rows: int


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format_version: Literal[1] = 1
    model_version: str
    created_at: datetime
    model_file: str = MODEL_FILE
    onnx_sha256: str
    onnx_opset: dict[str, int]
    schema_hash: str
    features: list[str]
    algorithm: str
    metrics: dict[str, float]
    policy: Policy
    score_scale: ScoreScale
    reason_reference: dict[str, int | str] = Field(
        description="favourable value per input, used for reason codes"
    )
    reference_distributions: dict[str, Distribution]
    age_invariant: bool = Field(
        False,
        description="the model's output does not depend on age: verified by the export on every training"
        " row at every age, and again at load; Regulation B's age rule then holds by construction",
    )
    age_approval: AgeApproval | None = Field(
        None,
        description="out-of-fold approval by age band under this manifest's policy, for the retrain's"
        " fairness gate; None in manifests written before it was recorded",
    )
    training_data_sha256: str
    package_versions: dict[str, str]
    extra: dict[str, Any] = Field(default_factory=dict)
