"""skl2onnx converters for the project's own classes (``training.features``, ``training.calibration``).

skl2onnx knows only scikit-learn's classes; ``Log`` and ``MonthlyPayment`` are each one ONNX
operator (``Log``; ``Gather`` twice and ``Div``). The graph computes them in float32, as the
Python side does, so both produce the same bits. ``PlattCalibrated`` has its own parser: the
wrapped model's graph is laid out as skl2onnx lays out any model, and one operator maps its
probability as the Python class does. Call :func:`register` before converting.
"""

from __future__ import annotations

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx._parse import _parse_sklearn
from skl2onnx.algebra.onnx_ops import (
    OnnxAdd,
    OnnxCast,
    OnnxClip,
    OnnxConcat,
    OnnxDiv,
    OnnxGather,
    OnnxGreaterOrEqual,
    OnnxLog,
    OnnxMul,
    OnnxReshape,
    OnnxSigmoid,
    OnnxSub,
)
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from skl2onnx.proto import onnx_proto
from sklearn.pipeline import Pipeline

from training.calibration import CLIP, PlattCalibrated
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


def _classifier_outputs(operator) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = Int64TensorType([rows])
    operator.outputs[1].type = FloatTensorType([rows, 2])


def _final_step(estimator):
    """The estimator whose parser declares the probabilities: a pipeline's last step, else itself."""
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _parse_platt(scope, model, inputs, custom_parsers=None):
    """Parse the wrapped model as skl2onnx parses any model, then add Platt scaling on its output.

    skl2onnx's ``OnnxSubEstimator`` parses the model it embeds as one operator of the model's own
    alias; a pipeline (a ColumnTransformer over 16 named inputs, then the learner) is many
    operators, so that parse declares no outputs ("Empty inputs ... OnnxSubEstimator"). Parsing
    here instead lets the pipeline's parser lay out every step. The two outputs are declared first,
    so they get the plain names ``label`` and ``probabilities`` and the wrapped model's are suffixed.
    """
    scope.get_options(model, {"zipmap": False})
    label = scope.declare_local_variable("label", Int64TensorType())
    probabilities = scope.declare_local_variable("probabilities", FloatTensorType())
    scope.add_options(id(_final_step(model.estimator_)), {"zipmap": False})
    wrapped = _parse_sklearn(scope, model.estimator_, inputs, custom_parsers=custom_parsers)
    operator = scope.declare_local_operator("CreditPlattCalibrated", model)
    operator.inputs = [wrapped[1]]
    operator.outputs.extend([label, probabilities])
    return operator.outputs


def _convert_platt(scope, operator, container) -> None:
    """``q = sigmoid(slope * logit(clip(p)) + intercept)`` in float64, as the Python class computes it.

    In float32, ``1 - CLIP`` rounds to ``1 - 1.013e-6``: a leaf that is certain (a decision tree's
    pure leaf, p = 1) would get a logit 1.3% off the Python one, a probability ~3e-4 off after the
    map, beyond the parity tolerance. Only the result is cast back to float32.
    """
    opset = container.target_opset
    model = operator.raw_operator
    f64 = np.float64
    p = OnnxGather(operator.inputs[0], np.array([1], dtype=np.int64), axis=1, op_version=opset)
    p = OnnxCast(p, to=onnx_proto.TensorProto.DOUBLE, op_version=opset)
    p = OnnxClip(p, np.array(CLIP, dtype=f64), np.array(1 - CLIP, dtype=f64), op_version=opset)
    odds = OnnxDiv(p, OnnxSub(np.array([1], dtype=f64), p, op_version=opset), op_version=opset)
    z = OnnxAdd(
        OnnxMul(OnnxLog(odds, op_version=opset), np.array([model.slope_], dtype=f64), op_version=opset),
        np.array([model.intercept_], dtype=f64),
        op_version=opset,
    )
    q = OnnxCast(OnnxSigmoid(z, op_version=opset), to=onnx_proto.TensorProto.FLOAT, op_version=opset)
    complement = OnnxSub(np.array([1], dtype=np.float32), q, op_version=opset)
    probabilities = OnnxConcat(
        complement, q, axis=1, op_version=opset, output_names=[operator.outputs[1].full_name]
    )
    positive = OnnxCast(
        OnnxGreaterOrEqual(q, np.array([0.5], dtype=np.float32), op_version=opset),
        to=onnx_proto.TensorProto.INT64,
        op_version=opset,
    )
    flat = np.array([-1], dtype=np.int64)
    label = OnnxReshape(positive, flat, op_version=opset, output_names=[operator.outputs[0].full_name])
    probabilities.add_to(scope, container)
    label.add_to(scope, container)


def register() -> None:
    """Teach skl2onnx the project's transformers (idempotent)."""
    update_registered_converter(Log, "CreditLog", _same_shape, _convert_log)
    update_registered_converter(MonthlyPayment, "CreditMonthlyPayment", _one_column, _convert_monthly_payment)
    update_registered_converter(
        PlattCalibrated,
        "CreditPlattCalibrated",
        _classifier_outputs,
        _convert_platt,
        parser=_parse_platt,
        options={"zipmap": [False]},
    )
