"""Run a state machine definition in-process: the part of ASL the two file flows use.

moto (5.2) executes Step Functions definitions, Distributed Map and CSV ItemReader included,
but its parser rejects ``ItemBatcher``, which the file flows need (batches of ~1000 rows).
So the flow tests run the template's own definition with this runner, which follows it state
by state: ItemReader (S3 getObject, CSV with its header row), ItemSelector with
``$$.Map.Item.Index``/``Value``, ItemBatcher (``MaxItemsPerBatch``, ``BatchInput``), the
ItemProcessor per batch, ResultWriter (a manifest and result file laid out as AWS writes them),
Task ``lambda:invoke`` (the handler called in-process with the exact payload) and
``events:putEvents``, Retry and Catch by error name, Parameters/ResultPath/OutputPath.
S3 and EventBridge calls go through boto3 to moto. Batches run one after another: concurrency
changes no result (each batch writes its own part). ``test_portfolio_flow`` also checks that
moto's parser accepts the rest of each definition.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support import LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
PUT_EVENTS = "arn:aws:states:::events:putEvents"


class Failure(Exception):
    """A state failed with a named error, as Step Functions names them."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def path(expression: str, data: Any, context: dict[str, Any]) -> Any:
    """``$``, ``$.a.b`` on the state's input, ``$$.a.b`` on the context object."""
    if expression in ("$", "$$"):
        return data if expression == "$" else context
    root, rest = (context, expression[3:]) if expression.startswith("$$.") else (data, expression[2:])
    for part in rest.split("."):
        root = root[part]
    return root


def resolve(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """Parameters, ItemSelector, BatchInput: keys ending in ``.$`` are paths, the rest literal."""
    if isinstance(template, dict):
        return {
            (k[:-2] if k.endswith(".$") else k): (
                path(v, data, context) if k.endswith(".$") else resolve(v, data, context)
            )
            for k, v in template.items()
        }
    if isinstance(template, list):
        return [resolve(v, data, context) for v in template]
    return template


def put(data: Any, result_path: str | None, value: Any) -> Any:
    """ResultPath: None keeps the input, ``$`` replaces it, ``$.a`` sets a field of a copy."""
    if result_path is None:
        return data
    if result_path == "$":
        return value
    data = copy.deepcopy(data)
    *parents, last = result_path[2:].split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def matching(rules: list[dict[str, Any]], error: str) -> dict[str, Any] | None:
    for rule in rules:
        names = rule["ErrorEquals"]
        if (
            error in names
            or "States.ALL" in names
            or ("States.TaskFailed" in names and error != "States.Timeout")
        ):
            return rule
    return None


@dataclass
class Runner:
    definition: dict[str, Any]
    functions: dict[str, Handler]
    s3: Any
    events: Any
    started_at: str = "2026-12-03T07:00:00.000Z"
    entered: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    result_files: list[str] = field(default_factory=list)

    def run(self, execution_input: dict[str, Any]) -> Any:
        context = {"Execution": {"Input": execution_input, "StartTime": self.started_at}}
        return self.machine(self.definition, execution_input, context)

    def machine(self, definition: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        name = definition["StartAt"]
        while True:
            spec = definition["States"][name]
            self.entered[name] += 1
            try:
                data_out = self.state(spec, data, context)
            except Failure as failure:
                catcher = matching(spec.get("Catch", []), failure.error)
                if catcher is None:
                    raise
                data = put(
                    data, catcher.get("ResultPath", "$"), {"Error": failure.error, "Cause": failure.cause}
                )
                name = catcher["Next"]
                continue
            if spec["Type"] == "Fail":
                raise Failure(spec["Error"], spec.get("Cause", ""))
            data = data_out
            if spec.get("End") or spec["Type"] == "Succeed":
                return data
            name = spec["Next"]

    def state(self, spec: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        kind = spec["Type"]
        if kind == "Fail":
            return data
        if kind == "Task":
            parameters = resolve(spec.get("Parameters", {}), data, context)
            result = self.retrying(spec, lambda: self.task(spec["Resource"], parameters))
        elif kind == "Map":
            result = self.map(spec, data, context)
        else:
            raise NotImplementedError(kind)
        output = put(data, spec.get("ResultPath", "$"), result)
        return path(spec.get("OutputPath", "$"), output, context)

    def retrying(self, spec: dict[str, Any], call: Callable[[], Any]) -> Any:
        used: Counter[int] = Counter()
        while True:
            try:
                return call()
            except Failure as failure:
                rules = spec.get("Retry", [])
                rule = matching(rules, failure.error)
                if rule is None or used[rules.index(rule)] >= rule.get("MaxAttempts", 3):
                    raise
                used[rules.index(rule)] += 1
                self.retried[failure.error] += 1

    def task(self, resource: str, parameters: dict[str, Any]) -> Any:
        if resource == LAMBDA_INVOKE:
            handler = self.functions[parameters["FunctionName"]]
            payload = json.loads(json.dumps(parameters["Payload"]))  # what Lambda receives: JSON
            try:
                answer = handler(payload, LambdaContext())
            except Exception as exc:
                raise Failure(getattr(exc, "error", type(exc).__name__), str(exc)) from exc
            return {"StatusCode": 200, "Payload": json.loads(json.dumps(answer))}
        if resource == PUT_EVENTS:
            entries = [{**e, "Detail": json.dumps(e["Detail"])} for e in parameters["Entries"]]
            answer = self.events.put_events(Entries=entries)
            if answer["FailedEntryCount"]:
                raise Failure("EventBridge.FailedEntries", json.dumps(answer["Entries"]))
            return {"Entries": answer["Entries"], "FailedEntryCount": 0}
        raise NotImplementedError(resource)

    def items(self, reader: dict[str, Any], data: Any, context: dict[str, Any]) -> list[dict[str, str]]:
        assert reader["Resource"] == "arn:aws:states:::s3:getObject"
        assert reader["ReaderConfig"] == {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
        parameters = resolve(reader["Parameters"], data, context)
        text = self.s3.get_object(**parameters)["Body"].read().decode("utf-8")
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows)
        return [{h: (row[i] if i < len(row) else "") for i, h in enumerate(header)} for row in rows]

    def map(self, spec: dict[str, Any], data: Any, context: dict[str, Any]) -> dict[str, Any]:
        items = self.items(spec["ItemReader"], data, context)
        selector = spec.get("ItemSelector")
        selected = [
            resolve(selector, data, {**context, "Map": {"Item": {"Index": i, "Value": v}}}) if selector else v
            for i, v in enumerate(items)
        ]
        batcher = spec["ItemBatcher"]
        size = batcher["MaxItemsPerBatch"]
        batch_input = resolve(batcher.get("BatchInput", {}), data, context)
        batches = [
            {"Items": selected[i : i + size], "BatchInput": batch_input}
            for i in range(0, len(selected), size)
        ]
        succeeded, failed = [], []
        for batch in batches:
            try:
                output = self.machine(spec["ItemProcessor"], batch, context)
                succeeded.append(
                    {"Input": json.dumps(batch), "Output": json.dumps(output), "Status": "SUCCEEDED"}
                )
            except Failure as failure:
                failed.append({"Input": json.dumps(batch), "Error": failure.error, "Status": "FAILED"})
        written = self.write_results(spec["ResultWriter"], data, context, succeeded, failed)
        if failed:  # ToleratedFailurePercentage defaults to 0
            raise Failure(
                "States.ExceededToleratedFailureThreshold", f"{len(failed)} of {len(batches)} batches failed"
            )
        return written

    def write_results(
        self,
        writer: dict[str, Any],
        data: Any,
        context: dict[str, Any],
        succeeded: list[Any],
        failed: list[Any],
    ) -> dict[str, Any]:
        """As AWS lays them out: ``<Prefix>/<map run id>/manifest.json`` beside SUCCEEDED_0.json etc."""
        assert writer["Resource"] == "arn:aws:states:::s3:putObject"
        parameters = resolve(writer["Parameters"], data, context)
        bucket, prefix = parameters["Bucket"], parameters["Prefix"].rstrip("/")
        run = f"{prefix}/local-map-run"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status, results in (("SUCCEEDED", succeeded), ("FAILED", failed)):
            if results:
                key = f"{run}/{status}_0.json"
                self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(results).encode())
                files[status].append({"Key": key, "Size": 0})
                self.result_files.append(key)
        manifest = {
            "DestinationBucket": bucket,
            "MapRunArn": "arn:aws:states:local:map-run",
            "ResultFiles": files,
        }
        self.s3.put_object(Bucket=bucket, Key=f"{run}/manifest.json", Body=json.dumps(manifest).encode())
        return {
            "MapRunArn": manifest["MapRunArn"],
            "ResultWriterDetails": {"Bucket": bucket, "Key": f"{run}/manifest.json"},
        }
