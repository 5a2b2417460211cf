"""How the 16 schema inputs become model columns, for linear models and for trees.

Both encoders are *stateless*: one-hot categories come from the schema (not from the data), and
the derived columns are fixed formulas. Fitting one on any rows gives the same transformation,
so the model search may encode the frame once and cross-validate only the learned steps after it
(``training.tune``) without leaking anything between folds.

Derived columns are computed in float32, the precision the ONNX graph computes them in, so that
scikit-learn and onnxruntime see bit-identical values (scikit-learn trees compare in float32 too).
The ONNX converters for the two small transformers here live in ``training.onnx_converters``.
"""

from __future__ import annotations

import numpy as np
from credit_api.schema import BY_NAME, CATEGORICAL, NUMERIC
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

LOGGED = ("amount", "months_loan_duration", "age")
"""Right-skewed amounts and durations whose effect on the log-odds is closer to linear in the log."""

BANDS = tuple(name for name in NUMERIC if name not in LOGGED)
"""Small ordinal bands (1-4, 1-2): used as they are."""

PAYMENT_INPUTS = ("amount", "months_loan_duration")


class Log(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Natural log of strictly positive columns (the schema's bounds guarantee positivity)."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        values = np.asarray(X, dtype=np.float32)
        if np.any(values <= 0):
            raise ValueError("Log needs strictly positive values")
        return np.log(values).astype(np.float64)


class MonthlyPayment(TransformerMixin, BaseEstimator):
    """``amount / months``: the instalment, which neither input shows alone."""

    def fit(self, X, y=None):
        if np.asarray(X).shape[1] != 2:
            raise ValueError("MonthlyPayment takes exactly two columns: amount, months")
        self.n_features_in_ = 2
        return self

    def transform(self, X):
        values = np.asarray(X, dtype=np.float32)
        return (values[:, 0] / values[:, 1]).reshape(-1, 1).astype(np.float64)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array(["monthly_payment"], dtype=object)


def _one_hot() -> OneHotEncoder:
    """Every schema code gets a column, in schema order; an unknown code is an error, never ignored."""
    return OneHotEncoder(
        categories=[list(BY_NAME[name].codes) for name in CATEGORICAL],
        handle_unknown="error",
        sparse_output=False,
        dtype=np.float64,
    )


def linear_encoder() -> ColumnTransformer:
    """Scorecard-style columns: one dummy per code, logs of the skewed numbers, the bands as is."""
    return ColumnTransformer(
        [
            ("codes", _one_hot(), list(CATEGORICAL)),
            ("logs", Log(), list(LOGGED)),
            ("bands", "passthrough", list(BANDS)),
        ],
        verbose_feature_names_out=False,
    )


def tree_encoder() -> ColumnTransformer:
    """Columns for trees: one dummy per code, every number raw, plus the monthly payment."""
    return ColumnTransformer(
        [
            ("codes", _one_hot(), list(CATEGORICAL)),
            ("numbers", "passthrough", list(NUMERIC)),
            ("payment", MonthlyPayment(), list(PAYMENT_INPUTS)),
        ],
        verbose_feature_names_out=False,
    )


ENCODERS = {"linear": linear_encoder, "tree": tree_encoder}
