"""skl2onnx converters for the project's own transformers (``training.features``).

skl2onnx knows only scikit-learn's classes; ``Log`` and ``MonthlyPayment`` are each one ONNX
operator (``Log``; ``Gather`` twice and ``Div``). The graph computes them in float32, as the
Python side does, so both produce the same bits. Call :func:`register` before converting.
"""

from __future__ import annotations

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxDiv, OnnxGather, OnnxLog

from training.features import Log, MonthlyPayment


def _same_shape(operator) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.inputs[0].type.__class__([rows, operator.raw_operator.n_features_in_])


def _one_column(operator) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.inputs[0].type.__class__([rows, 1])


def _convert_log(scope, operator, container) -> None:
    node = OnnxLog(operator.inputs[0], op_version=container.target_opset, output_names=operator.outputs[:1])
    node.add_to(scope, container)


def _convert_monthly_payment(scope, operator, container) -> None:
    opset = container.target_opset
    columns = operator.inputs[0]
    amount = OnnxGather(columns, np.array([0], dtype=np.int64), axis=1, op_version=opset)
    months = OnnxGather(columns, np.array([1], dtype=np.int64), axis=1, op_version=opset)
    node = OnnxDiv(amount, months, op_version=opset, output_names=operator.outputs[:1])
    node.add_to(scope, container)


def register() -> None:
    """Teach skl2onnx the project's transformers (idempotent)."""
    update_registered_converter(Log, "CreditLog", _same_shape, _convert_log)
    update_registered_converter(MonthlyPayment, "CreditMonthlyPayment", _one_column, _convert_monthly_payment)
