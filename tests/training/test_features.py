"""The encoders: stateless (so the search may encode once), and computing what ONNX computes."""

import numpy as np
import pytest
from credit_api.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES

from training.data import load
from training.features import Log, MonthlyPayment, linear_encoder, tree_encoder


@pytest.mark.parametrize("factory", [linear_encoder, tree_encoder])
def test_encoders_learn_nothing_from_the_rows_they_are_fitted_on(factory):
    inputs = load()[list(FEATURE_NAMES)]
    few = inputs[inputs["purpose"] == "car_new"].head(30)
    np.testing.assert_array_equal(
        factory().fit(few).transform(inputs), factory().fit(inputs).transform(inputs)
    )


@pytest.mark.parametrize("factory", [linear_encoder, tree_encoder])
def test_every_schema_code_has_a_column_and_unknown_codes_are_errors(factory):
    inputs = load()[list(FEATURE_NAMES)]
    encoder = factory().fit(inputs)
    names = list(encoder.get_feature_names_out())
    for name in CATEGORICAL:
        assert [n for n in names if n.startswith(f"{name}_")] == [
            f"{name}_{code}" for code in BY_NAME[name].codes
        ]
    odd = inputs.head(1).assign(purpose="vacation")
    with pytest.raises(ValueError, match="unknown categor"):
        encoder.transform(odd)


def test_monthly_payment_is_the_float32_quotient():
    values = np.array([[1169, 6], [5951, 48], [250, 72], [18424, 7]])
    expected = np.float32(values[:, 0]) / np.float32(values[:, 1])
    got = MonthlyPayment().fit(values).transform(values)[:, 0]
    np.testing.assert_array_equal(got, expected.astype(np.float64))
    assert MonthlyPayment().fit(values).get_feature_names_out().tolist() == ["monthly_payment"]


def test_log_refuses_non_positive_values():
    with pytest.raises(ValueError, match="strictly positive"):
        Log().fit(np.array([[1.0], [0.0]])).transform(np.array([[1.0], [0.0]]))
