"""Challenger models for the shadow tests: small ONNX graphs with the function's inputs, built here.

The bundled model under another name would score exactly as the champion does, so nothing a
shadow records could be told apart from the champion's. These graphs score by the loan amount
alone (``sigmoid((amount - centre) / spread)``), so their decisions differ from the champion's
in a way a test can predict, and they load through the same checks as any model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
from onnx import TensorProto, helper

from tests.function.conftest import BUNDLED


def amount_graph(centre: float = 3000.0, spread: float = 1000.0, amount_type: int | None = None) -> bytes:
    """An ONNX model with the bundled model's inputs whose probability of default rises with the amount.

    ``amount_type`` declares ``amount`` with another element type (e.g. ``TensorProto.DOUBLE``),
    so the shadow cannot share the champion's input tensors.
    """
    bundled = onnx.load_from_string((BUNDLED / MODEL_FILE).read_bytes())
    inputs = []
    for declared in bundled.graph.input:
        tensor = declared.type.tensor_type
        elem = amount_type if declared.name == "amount" and amount_type is not None else tensor.elem_type
        inputs.append(helper.make_tensor_value_info(declared.name, elem, [None, 1]))
    nodes = [
        helper.make_node("Cast", ["amount"], ["amount_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["amount_f", "centre"], ["shifted"]),
        helper.make_node("Div", ["shifted", "spread"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    initializers = [
        helper.make_tensor("centre", TensorProto.FLOAT, [], [centre]),
        helper.make_tensor("spread", TensorProto.FLOAT, [], [spread]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "amount_challenger",
        inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def challenger_dir(tmp_path: Path, version: str, model_bytes: bytes | None = None) -> Path:
    """A model directory: ``model_bytes`` (default :func:`amount_graph`) with the bundled manifest,
    renamed to ``version`` and carrying the new sha256."""
    target = tmp_path / version
    shutil.copytree(BUNDLED, target)
    data = model_bytes if model_bytes is not None else amount_graph()
    (target / MODEL_FILE).write_bytes(data)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["model_version"] = version
    manifest["onnx_sha256"] = hashlib.sha256(data).hexdigest()
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target
