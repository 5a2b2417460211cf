"""Train the baseline's scikit-learn pipeline from ``data/credit.csv`` and save it with joblib.

Trained at benchmark time, never committed: the obvious build ships a pickle beside its code.
The estimator follows the bundled champion's family (from its manifest) so the comparison is
between two ways of serving a like model, not between two models.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from credit_api.manifest import MANIFEST_FILE
from credit_api.schema import CATEGORICAL, FEATURE_NAMES, NUMERIC, TARGET

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "credit.csv"


def estimator_for(algorithm: str) -> tuple[str, Pipeline]:
    """A pipeline of the same family as ``algorithm`` (the manifest's description of the champion)."""
    name = algorithm.lower()
    if "boost" in name or "gbm" in name or "xgb" in name:
        encode = ColumnTransformer([("codes", OrdinalEncoder(), list(CATEGORICAL))], remainder="passthrough")
        model = HistGradientBoostingClassifier(categorical_features=list(range(len(CATEGORICAL))), random_state=0)
        return "HistGradientBoostingClassifier", Pipeline([("encode", encode), ("model", model)])
    if "forest" in name:
        encode = ColumnTransformer([("codes", OrdinalEncoder(), list(CATEGORICAL))], remainder="passthrough")
        model = RandomForestClassifier(n_estimators=300, min_samples_leaf=5, random_state=0, n_jobs=1)
        return "RandomForestClassifier", Pipeline([("encode", encode), ("model", model)])
    encode = ColumnTransformer(
        [
            ("codes", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
            ("numbers", StandardScaler(), list(NUMERIC)),
        ]
    )
    return "LogisticRegression", Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=2000))])


def train(model_dir: Path, out: Path) -> str:
    """Fit on the whole data set and dump to ``out``; returns the estimator's name."""
    algorithm = json.loads((model_dir / MANIFEST_FILE).read_text())["algorithm"]
    name, pipeline = estimator_for(algorithm)
    frame = pd.read_csv(DATA)
    pipeline.fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    joblib.dump(pipeline, out)
    return name
