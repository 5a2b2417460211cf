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
    training_data_sha256: str
    package_versions: dict[str, str]
    extra: dict[str, Any] = Field(default_factory=dict)
