"""Platt scaling that skl2onnx can convert behind the service's 16 named inputs.

scikit-learn's ``CalibratedClassifierCV`` converts only with a single input tensor, but the
service's graph has one input per feature. ``PlattCalibrated`` does the same job as
``CalibratedClassifierCV(method="sigmoid", ensemble=False)``: the wrapped model's cross-validated
probabilities on the training rows fit ``q = sigmoid(a * logit(p) + b)``, then the model is refit
on all rows. Its ONNX converter (``training.onnx_converters``) embeds the wrapped model's graph and
applies the same two numbers.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

CLIP = 1e-6
"""Probabilities are clipped to [CLIP, 1 - CLIP] before the logit, in both implementations."""
FOLDS = 5
"""Folds of the cross-validated probabilities the map is fit on, when training calibrates a champion."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


class PlattCalibrated(ClassifierMixin, BaseEstimator):
    """``estimator`` with its probability of class 1 recalibrated by a logistic map of its logit."""

    def __init__(self, estimator: BaseEstimator, cv=5) -> None:
        self.estimator = estimator
        self.cv = cv

    def fit(self, X, y):
        held_out = cross_val_predict(clone(self.estimator), X, y, cv=self.cv, method="predict_proba")[:, 1]
        platt = LogisticRegression(C=1e6).fit(logit(held_out).reshape(-1, 1), y)
        self.slope_, self.intercept_ = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        p = self.estimator_.predict_proba(X)[:, 1]
        q = 1 / (1 + np.exp(-(self.slope_ * logit(p) + self.intercept_)))
        return np.column_stack([1 - q, q])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def champion_calibration(estimator: BaseEstimator, seed: int) -> PlattCalibrated:
    """``estimator`` wrapped as training wraps a champion it calibrates (unfitted): the one recipe,
    so the export tests convert exactly what training can ship."""
    return PlattCalibrated(estimator, cv=StratifiedKFold(FOLDS, shuffle=True, random_state=seed))
