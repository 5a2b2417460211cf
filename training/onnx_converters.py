"""skl2onnx converters for the project's own classes (``training.features``, ``training.calibration``).

skl2onnx knows only scikit-learn's classes; ``Log`` and ``MonthlyPayment`` are each one ONNX
operator (``Log``; ``Gather`` twice and ``Div``). The graph computes them in float32, as the
Python side does, so both produce the same bits. ``PlattCalibrated`` embeds its wrapped model's
graph and maps the probability as the Python class does. Call :func:`register` before converting.
"""

from __future__ import annotations

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
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
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch

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


def _sub_estimator(inner):
    """The calibrated model as skl2onnx can embed it: a pipeline as a soft vote of itself alone.

    skl2onnx's sub-estimator gives a pipeline (16 named inputs into a ColumnTransformer) no outputs
    ("Empty inputs"), while a voting classifier over the same pipeline converts; one member's soft
    vote is that member's probabilities, so nothing changes but the graph's wrapping.
    """
    if not isinstance(inner, Pipeline):
        return inner
    vote = VotingClassifier([("only", inner)], voting="soft", flatten_transform=False)
    vote.estimators_ = [inner]
    vote.named_estimators_ = Bunch(only=inner)
    vote.le_ = LabelEncoder().fit(inner.classes_)
    vote.classes_ = vote.le_.classes_
    return vote


def _convert_platt(scope, operator, container) -> None:
    opset = container.target_opset
    model = operator.raw_operator
    f32 = np.float32
    inner = OnnxSubEstimator(
        _sub_estimator(model.estimator_), *operator.inputs, op_version=opset, options={"zipmap": False}
    )
    p = OnnxGather(inner[1], np.array([1], dtype=np.int64), axis=1, op_version=opset)
    p = OnnxClip(p, np.array(CLIP, dtype=f32), np.array(1 - CLIP, dtype=f32), op_version=opset)
    odds = OnnxDiv(p, OnnxSub(np.array([1], dtype=f32), p, op_version=opset), op_version=opset)
    z = OnnxAdd(
        OnnxMul(OnnxLog(odds, op_version=opset), np.array([model.slope_], dtype=f32), op_version=opset),
        np.array([model.intercept_], dtype=f32),
        op_version=opset,
    )
    q = OnnxSigmoid(z, op_version=opset)
    complement = OnnxSub(np.array([1], dtype=f32), q, op_version=opset)
    probabilities = OnnxConcat(
        complement, q, axis=1, op_version=opset, output_names=[operator.outputs[1].full_name]
    )
    positive = OnnxCast(
        OnnxGreaterOrEqual(q, np.array([0.5], dtype=f32), op_version=opset),
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
        options={"zipmap": [False, True], "nocl": [False, True]},
    )
