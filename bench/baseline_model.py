"""Train the baseline's scikit-learn estimator from ``data/credit.csv`` and save it with joblib.

Trained at benchmark time, never committed: the obvious build ships a pickle beside its code.
The estimator is the bundled champion itself, rebuilt with ``training.models`` from the
manifest's algorithm, hyperparameters and seed, so the two builds serve the same model (the
benchmark reports how far their probabilities differ). A manifest that does not name a
``training.models`` candidate gets a pipeline of the same family instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
from credit_api.schema import CATEGORICAL, FEATURE_NAMES, NUMERIC, TARGET
from credit_api.scoring import Scorer
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "credit.csv"


def champion(manifest: dict[str, Any]) -> tuple[str, BaseEstimator] | None:
    """The champion's unfitted estimator, as training built it; None if the manifest can't say."""
    from training.models import build, candidates

    extra = manifest.get("extra", {})
    name = manifest["algorithm"].split(":")[0].strip()
    catalogue = candidates(quick=bool(extra.get("quick", False)))
    if name not in catalogue or "params" not in extra or "seed" not in extra:
        return None
    params = extra["params"] if catalogue[name].ensemble else extra["params"].get(name, extra["params"])
    return f"{name} (the champion, rebuilt)", build(catalogue[name], params, int(extra["seed"]), catalogue)


def same_family(algorithm: str) -> tuple[str, Pipeline]:
    """A pipeline of the same family as ``algorithm``, for manifests that name no candidate."""
    name = algorithm.lower()
    if "boost" in name or "forest" in name:
        encode = ColumnTransformer([("codes", OrdinalEncoder(), list(CATEGORICAL))], remainder="passthrough")
        model: BaseEstimator = (
            RandomForestClassifier(n_estimators=200, min_samples_leaf=3, random_state=0, n_jobs=1)
            if "forest" in name
            else HistGradientBoostingClassifier(random_state=0)
        )
        return f"{type(model).__name__} (same family)", Pipeline([("encode", encode), ("model", model)])
    encode = ColumnTransformer(
        [
            ("codes", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
            ("numbers", StandardScaler(), list(NUMERIC)),
        ]
    )
    model = LogisticRegression(max_iter=2000)
    return "LogisticRegression (same family)", Pipeline([("encode", encode), ("model", model)])


def train(model_dir: Path, out: Path) -> tuple[str, float]:
    """Fit on the whole data set and dump to ``out``.

    Returns the estimator's description and the largest difference between its probabilities
    and the bundled ONNX model's on the data set.
    """
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    try:
        found = champion(manifest)
    except (ImportError, KeyError, TypeError, ValueError):
        found = None
    name, estimator = found or same_family(manifest["algorithm"])
    from training import fairness

    frame = pd.read_csv(DATA)
    inputs = frame[list(FEATURE_NAMES)]
    # Fitted as the champion was: on what the model learns from (age left out, training.fairness).
    estimator.fit(fairness.model_inputs(frame)[list(FEATURE_NAMES)], frame[TARGET])
    joblib.dump(estimator, out)
    onnx = Scorer.from_bytes((model_dir / MODEL_FILE).read_bytes()).predict(inputs.to_dict("records"))
    difference = float(np.max(np.abs(estimator.predict_proba(inputs)[:, 1] - onnx)))
    return name, difference
