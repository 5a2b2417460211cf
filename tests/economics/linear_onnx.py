"""A hand-written ONNX logistic model honouring the scorer's contract, for exact reason-code tests.

logit = intercept + sum(coded weights[code]) + sum(numeric weights * value); p = sigmoid(logit).
Known weights make every probability, and every fall in probability, computable by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import onnx
from credit_api.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES, NUMERIC
from credit_api.scoring import Scorer
from onnx import TensorProto, helper


def build(coded: Mapping[str, Mapping[str, float]], numeric: Mapping[str, float], intercept: float) -> bytes:
    """ONNX bytes: one [N,1] input per schema feature, output ``probabilities`` [N,2]."""
    nodes, inputs, terms, initializers = [], [], [], []
    for name in FEATURE_NAMES:
        if name in CATEGORICAL:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, [None, 1]))
            weights = coded.get(name, {})
            codes = list(BY_NAME[name].codes)
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [f"{name}_w"],
                    domain="ai.onnx.ml",
                    keys_strings=codes,
                    values_floats=[float(weights.get(code, 0.0)) for code in codes],
                    default_float=0.0,
                )
            )
        else:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
            initializers.append(
                helper.make_tensor(f"{name}_c", TensorProto.FLOAT, [1], [numeric.get(name, 0.0)])
            )
            nodes.append(helper.make_node("Mul", [name, f"{name}_c"], [f"{name}_w"]))
        terms.append(f"{name}_w")
    initializers.append(helper.make_tensor("intercept", TensorProto.FLOAT, [1], [intercept]))
    initializers.append(helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    nodes += [
        helper.make_node("Sum", [*terms, "intercept"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_credit",
        inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def scorer(
    coded: Mapping[str, Mapping[str, float]], numeric: Mapping[str, float], intercept: float
) -> Scorer:
    return Scorer.from_bytes(build(coded, numeric, intercept))


def probability(
    row: Mapping[str, Any],
    coded: Mapping[str, Mapping[str, float]],
    numeric: Mapping[str, float],
    intercept: float,
) -> float:
    """The same model by hand, in float64."""
    logit = intercept
    logit += sum(coded.get(name, {}).get(str(row[name]), 0.0) for name in CATEGORICAL)
    logit += sum(numeric.get(name, 0.0) * float(row[name]) for name in NUMERIC)
    return 1.0 / (1.0 + math.exp(-logit))
