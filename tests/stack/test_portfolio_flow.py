"""The portfolio and outcome-file state machines from template.yaml, run end to end against moto.

Each definition is the template's ``DefinitionUri`` file with its ``DefinitionSubstitutions``;
it is checked as ASL (structure, and moto's own parser), its trigger is checked against the
bucket's real EventBridge notification in moto, and it is executed by ``asl_local.Runner``
(moto's parser has no ``ItemBatcher``) with the real handlers in-process, S3, DynamoDB and
EventBridge in moto. Every AWS call each function and the state machine sends is checked
against its policy in the template.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.template import ROOT, Resolver, function_environment, resources_of_type
from tests.stack.asl_local import Failure, Runner, resolve
from tests.stack.aws_calls import Call, allowed, policy_actions, recorded_calls
from tests.stack.test_permissions import all_statements, statements
from tests.support import load_event

FUNCTIONS = (
    "PortfolioWorkerFunction",
    "PortfolioAssemblerFunction",
    "OutcomeWorkerFunction",
    "OutcomeAssemblerFunction",
)
MACHINES = {"PortfolioStateMachine": "portfolio", "OutcomesStateMachine": "outcomes"}
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.AWSLambdaException"}
FEATURE_STATES = {"Map", "Task", "Fail"}


def _arn(logical_id: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{logical_id}"


def definition(template: dict[str, Any], machine: str) -> dict[str, Any]:
    """The definition as deployed: the file, its ``${...}`` replaced by the template's substitutions."""
    properties = template["Resources"][machine]["Properties"]
    text = (ROOT / properties["DefinitionUri"]).read_text()
    substitutions = properties["DefinitionSubstitutions"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(substitutions)  # none missing, none unused
    for name, value in substitutions.items():
        function, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn" and template["Resources"][function]["Type"] == "AWS::Serverless::Function"
        text = text.replace("${" + name + "}", _arn(function))
    return json.loads(text)


def _states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in machine["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from _states(state["ItemProcessor"])


# ---------------------------------------------------------------- the definitions


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_the_definition_is_valid_asl_for_a_distributed_map(template: dict[str, Any], machine: str) -> None:
    found = definition(template, machine)
    for scope in (found, *(s["ItemProcessor"] for _, s in _states(found) if "ItemProcessor" in s)):
        assert scope["StartAt"] in scope["States"]
        for name, state in scope["States"].items():
            assert state["Type"] in FEATURE_STATES, name
            targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
            assert all(t in scope["States"] for t in targets if t), name
            assert state["Type"] == "Fail" or (state.get("End") is True) != ("Next" in state), name
    (mapped,) = [s for _, s in _states(found) if s["Type"] == "Map"]
    assert mapped["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert mapped["ItemReader"]["ReaderConfig"] == {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
    assert mapped["ItemSelector"] == {"index.$": "$$.Map.Item.Index", "values.$": "$$.Map.Item.Value"}
    assert 100 <= mapped["ItemBatcher"]["MaxItemsPerBatch"] <= 1000
    assert 1 <= mapped["MaxConcurrency"] <= 100
    assert mapped["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    for name, state in _states(found):
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            retried = {e for rule in state["Retry"] for e in rule["ErrorEquals"]}
            assert retried >= LAMBDA_ERRORS, name  # throttles and service errors are retried
            assert state["Parameters"]["FunctionName"].startswith("arn:aws:lambda:")


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_moto_parses_the_definition_but_for_its_item_batcher(template: dict[str, Any], machine: str) -> None:
    """moto's ASL grammar (from LocalStack) knows every other field the definition uses."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    found = definition(template, machine)
    for _, state in _states(found):
        state.pop("ItemBatcher", None)
    AmazonStateLanguageParser.parse(json.dumps(found))


# ---------------------------------------------------------------- a run in moto


@dataclass
class Stack:
    """moto with the template's storage, the four functions' handlers, and what each called."""

    storage: dict[str, Any]
    template: dict[str, Any]
    calls: dict[str, list[Call]] = field(default_factory=dict)
    machine_calls: list[Call] = field(default_factory=list)
    faults: dict[str, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    machines_run: set[str] = field(default_factory=set)

    @property
    def bucket(self) -> str:
        return self.storage["names"].bucket

    @property
    def s3(self) -> Any:
        return self.storage["s3"]

    def handler(self, function: str) -> Callable[[dict[str, Any], Any], Any]:
        module, _, name = self.template["Resources"][function]["Properties"]["Handler"].rpartition(".")
        target = getattr(importlib.import_module(module), name)

        def invoke(event: dict[str, Any], context: Any) -> Any:
            if function in self.faults:
                self.faults[function](event)
            with recorded_calls() as calls:
                try:
                    return target(event, context)
                finally:
                    self.calls.setdefault(function, []).extend(calls)

        return invoke

    def runner(self, machine: str) -> Runner:
        import boto3

        found = definition(self.template, machine)
        self.machines_run.add(machine)
        functions = {_arn(f): self.handler(f) for f in FUNCTIONS}
        s3, events = boto3.client("s3"), boto3.client("events")
        for client in (s3, events):
            client.meta.events.register("provide-client-params", self._record_machine)
        return Runner(found, functions, s3, events)

    def _record_machine(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.machine_calls.append(Call(model.service_model.service_name, model.name, dict(params)))

    def drop(self, key: str, body: bytes, event_name: str) -> dict[str, Any]:
        """Put the file; the Object Created event EventBridge gives the state machine for it."""
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"].strip('"')
        event = load_event(event_name)
        event["detail"]["bucket"]["name"] = self.bucket
        event["detail"]["object"].update(key=key, etag=etag, size=len(body))
        event["resources"] = [f"arn:aws:s3:::{self.bucket}"]
        return event


@pytest.fixture
def stack(
    storage: dict[str, Any], template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """The functions' environment as the template gives it, against the moto storage."""
    import boto3
    from credit_api import file_runs, outcome_files, portfolio

    env = function_environment(storage["resolver"], "OutcomeWorkerFunction")
    env.update(function_environment(storage["resolver"], "PortfolioWorkerFunction"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caches = (file_runs.settings, file_runs.s3_client, portfolio._store, outcome_files._service)
    for cached in caches:
        cached.cache_clear()
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="file-run-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    events.put_rule(
        Name="file-runs", EventPattern=json.dumps({"source": ["credit.portfolio", "credit.outcomes"]})
    )
    events.put_targets(Rule="file-runs", Targets=[{"Id": "q", "Arn": queue_arn}])
    found = Stack(storage, template)
    found.storage["queue"] = queue
    yield found
    for cached in caches:
        cached.cache_clear()


def announced(stack: Stack) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.storage["queue"], MaxNumberOfMessages=10).get(
        "Messages", []
    )
    for message in messages:
        sqs.delete_message(QueueUrl=stack.storage["queue"], ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def portfolio_csv(n: int) -> tuple[bytes, dict[int, set[str]]]:
    """``n`` rows from data/credit.csv (cycled) with a loan reference column, and some bad rows:
    row -> the fields that are wrong in it."""
    with (ROOT / "data" / "credit.csv").open(newline="") as handle:
        source = [{k: v for k, v in row.items() if k != "default"} for row in csv.DictReader(handle)]
    out = io.StringIO()
    writer = csv.DictWriter(out, ["loan_ref", *source[0]], lineterminator="\n")
    writer.writeheader()
    bad: dict[int, set[str]] = {}
    for row in range(1, n + 1):
        values = {"loan_ref": f"L{row:07d}", **source[(row - 1) % len(source)]}
        if row % 997 == 0:
            values["age"], bad[row] = "17", {"age"}
        elif row % 1009 == 0:
            values["purpose"], bad[row] = "", {"purpose"}
        elif row % 1013 == 0:
            values.update(amount="12.5", phone="maybe")
            bad[row] = {"amount", "phone"}
        writer.writerow(values)
    return out.getvalue().encode(), bad


def _csv_rows(stack: Stack, key: str) -> list[dict[str, str]]:
    text = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(text)))


def check_portfolio_run(stack: Stack, n: int, api_sample: int) -> None:
    body, bad = portfolio_csv(n)
    event = stack.drop("batch/incoming/book-2026-12.csv", body, "portfolio_file_created")
    runner = stack.runner("PortfolioStateMachine")
    summary = runner.run(event)
    assert summary["rerun"] is False
    assert (summary["rows"], summary["error_rows"]) == (n, len(bad))
    assert summary["results"] + summary["error_rows"] == n
    assert runner.entered["Batch"] == -(-n // 1000)  # one worker call per 1000 rows
    scored = _csv_rows(stack, summary["files"]["results"])
    errors = _csv_rows(stack, summary["files"]["errors"])
    assert len(scored) == summary["results"] == n - len(bad)
    assert {int(r["row"]) for r in scored} | set(bad) == set(range(1, n + 1))
    assert {(int(e["row"]), e["field"]) for e in errors} == {(r, f) for r, fs in bad.items() for f in fs}
    assert all(e["reason"] for e in errors)
    assert scored[0]["loan_ref"] == "L0000001"  # the inputs ride along, extra columns too
    assert sum(summary["by_decision"].values()) == summary["results"]
    same_as_the_api(scored[:: max(1, len(scored) // api_sample)])
    assert stack.storage["dynamodb"].scan(TableName=stack.storage["names"].table)["Count"] == 0
    (event_sent,) = announced(stack)
    assert event_sent["detail-type"] == "Portfolio scored" and event_sent["detail"] == summary

    first = {k: stack.s3.head_object(Bucket=stack.bucket, Key=k)["ETag"] for k in summary["files"].values()}
    again = stack.runner("PortfolioStateMachine").run(event)  # the same file again
    assert again == {**summary, "rerun": True}
    assert {
        k: stack.s3.head_object(Bucket=stack.bucket, Key=k)["ETag"] for k in summary["files"].values()
    } == first
    assert announced(stack)[0]["detail"]["rerun"] is True


def same_as_the_api(rows: list[dict[str, str]]) -> None:
    """The scored rows' answers are POST /predict/batch's for the same applicants."""
    import tempfile
    from pathlib import Path

    from credit_api.api import create_app
    from credit_api.decision_log import SqliteDecisionLog
    from credit_api.rows import applicant_or_errors
    from credit_api.settings import Settings
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteDecisionLog(Path(tmp) / "d.sqlite3")
        client = TestClient(create_app(Settings(), log=log))
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            applicants = [applicant_or_errors(r)[0] for r in chunk]
            answer = client.post("/predict/batch", json={"applicants": applicants})
            assert answer.status_code == 200
            for row, api in zip(chunk, answer.json()["results"], strict=True):
                assert float(row["probability_of_default"]) == api["probability_of_default"]
                assert (row["decision"], int(row["score"]), row["risk_grade"]) == (
                    api["decision"],
                    api["score"],
                    api["risk_grade"],
                )
                assert row["reasons"] == "; ".join(r["message"] for r in api["reasons"])
                assert (row["model_version"], row["policy_version"]) == (
                    api["model_version"],
                    api["policy_version"],
                )
        log.close()


def test_a_portfolio_file_is_scored_end_to_end(stack: Stack) -> None:
    check_portfolio_run(stack, 2_500, api_sample=200)
    check_policies(stack)


@pytest.mark.slow
def test_a_portfolio_of_100000_rows_is_scored_end_to_end(stack: Stack) -> None:
    check_portfolio_run(stack, 100_000, api_sample=1000)


def test_a_throttled_batch_is_retried_and_a_failed_one_fails_the_run_visibly(stack: Stack) -> None:
    body, _ = portfolio_csv(2_100)
    event = stack.drop("batch/incoming/retry.csv", body, "portfolio_file_created")
    throttled: list[int] = []

    def throttle_once(batch: dict[str, Any]) -> None:
        if batch["Items"][0]["index"] == 1000 and not throttled:
            throttled.append(1)
            raise Throttled("Rate exceeded")

    stack.faults["PortfolioWorkerFunction"] = throttle_once
    runner = stack.runner("PortfolioStateMachine")
    assert runner.run(event)["rows"] == 2_100
    assert runner.retried == {"Lambda.TooManyRequestsException": 1}
    announced(stack)

    def broken(batch: dict[str, Any]) -> None:
        if batch["Items"][0]["index"] == 2000:
            raise RuntimeError("worker crashed")

    stack.faults["PortfolioWorkerFunction"] = broken
    event = stack.drop("batch/incoming/broken.csv", body, "portfolio_file_created")
    with pytest.raises(Failure, match="FileRunFailed"):
        stack.runner("PortfolioStateMachine").run(event)
    (failed,) = announced(stack)
    assert failed["detail-type"] == "Portfolio failed"
    assert failed["detail"]["error"] == "States.ExceededToleratedFailureThreshold"
    assert failed["detail"]["key"] == "batch/incoming/broken.csv"
    published = stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix="batch/scored/broken/")
    assert published["KeyCount"] == 0


class Throttled(Exception):
    error = "Lambda.TooManyRequestsException"


def test_an_outcome_file_is_applied_once_and_conflicts_are_error_rows(stack: Stack) -> None:
    from credit_api.decision_log import DynamoDecisionLog
    from credit_api.model_store import ModelStore
    from credit_api.schema import EXAMPLE_APPLICANT
    from credit_api.service import Call, DecisionService
    from credit_api.settings import Settings

    log = DynamoDecisionLog(stack.storage["names"].table, client=stack.storage["dynamodb"])
    service = DecisionService(ModelStore(Settings()), log)
    answers, _ = service.predict_batch([dict(EXAMPLE_APPLICANT)] * 3, Call(request_id="r", caller="c"))
    ids = [a["decision_id"] for a in answers]
    service.record_outcome(ids[2], True, _when("2026-10-01T00:00:00Z"), caller="c")
    rows = [
        (ids[0], "true", "2026-11-30T12:00:00Z"),
        (ids[1], "false", "2026-11-30T12:00:00Z"),
        (ids[2], "false", "2026-11-30T12:00:00Z"),  # a different outcome is already recorded
        ("0b6f7d52-8a3e-4d0f-9a39-2c1f5f0e6a11", "true", "2026-11-30T12:00:00Z"),
        (ids[0], "yes", "last week"),
    ]
    body = "decision_id,defaulted,observed_at\n" + "".join(",".join(r) + "\n" for r in rows)
    event = stack.drop("outcomes/incoming/nov.csv", body.encode(), "outcome_file_created")
    summary = stack.runner("OutcomesStateMachine").run(event)
    assert (summary["rows"], summary["results"], summary["error_rows"]) == (5, 2, 3)
    assert summary["by_status"] == {"recorded": 2}
    errors = _csv_rows(stack, summary["files"]["errors"])
    assert [(e["row"], e["field"]) for e in errors] == [
        ("3", "defaulted"),
        ("4", "decision_id"),
        ("5", "defaulted"),
        ("5", "observed_at"),
    ]
    stored = {i: log.get(i)["outcome"] for i in ids}
    assert stored[ids[0]]["defaulted"] is True and stored[ids[2]]["observed_at"] == "2026-10-01T00:00:00Z"

    copy = stack.drop("outcomes/incoming/nov-again.csv", body.encode(), "outcome_file_created")
    again = stack.runner("OutcomesStateMachine").run(copy)  # the same rows in a new file
    assert again["by_status"] == {"unchanged": 2} and again["error_rows"] == 3
    assert {i: log.get(i)["outcome"] for i in ids} == stored  # nothing overwritten
    check_policies(stack)


def _when(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- least privilege


def check_policies(stack: Stack) -> None:
    """Every call each function and the state machine sent is allowed by its own policy, on its
    resource (S3 listings within the granted prefix), and every grant of a function is used."""
    resolver: Resolver = stack.storage["resolver"]
    for function, calls in stack.calls.items():
        _check(all_statements(resolver, function), calls, resolver, function)
        own = statements(resolver, function)  # less KMS, which DynamoDB uses on the function's behalf
        assert {c.action() for c in calls} == policy_actions(own), function  # every grant is used
    policy = [s for m in stack.machines_run for s in _machine_statements(resolver, m)]
    _check(policy, stack.machine_calls, resolver, "state machine")


def _check(policy: list[dict[str, Any]], calls: list[Call], resolver: Resolver, who: str) -> None:
    assert calls, who
    for call in calls:
        if call.service == "events":
            resource = f"arn:aws:events:{resolver.region}:{resolver.account_id}:event-bus/default"
            assert call.params["Entries"][0]["EventBusName"] == "default"
        else:
            resource = call.resource(resolver.region, resolver.account_id)
        assert allowed(policy, call.action(), resource), (who, call.action(), resource)
        if call.operation == "ListObjectsV2":
            prefixes = [
                s["Condition"]["StringLike"]["s3:prefix"].rstrip("*")
                for s in policy
                if s["Action"] == "s3:ListBucket"
            ]
            assert any(call.params["Prefix"].startswith(p) for p in prefixes), (who, call.params["Prefix"])


def _machine_statements(resolver: Resolver, machine: str) -> list[dict[str, Any]]:
    policies = resolver.template["Resources"][machine]["Properties"]["Policies"]
    return [s for p in policies if "Statement" in p for s in resolver.resolve(p)["Statement"]]


def test_the_functions_and_machines_are_in_the_template_with_logs_and_alarms(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    for machine in MACHINES:
        properties = resources[machine]["Properties"]
        assert resources[machine]["Type"] == "AWS::Serverless::StateMachine"
        (trigger,) = properties["Events"].values()
        assert trigger["Type"] == "EventBridgeRule"
        assert trigger["Properties"]["Pattern"]["detail-type"] == ["Object Created"]
        (watching,) = [
            a["Properties"]
            for a in alarms
            if a["Properties"].get("MetricName") == "ExecutionsFailed"
            and a["Properties"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
        ]
        assert watching["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        log_group = properties["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
        assert resources[log_group["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"
    for function in FUNCTIONS:
        properties = resources[function]["Properties"]
        assert properties["CodeUri"] == "function/" and properties["PackageType"] == "Zip"
        group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    bucket = resources["ModelBucket"]["Properties"]
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


@pytest.mark.parametrize(
    ("machine", "prefix"),
    [("PortfolioStateMachine", "batch/incoming/"), ("OutcomesStateMachine", "outcomes/incoming/")],
)
def test_the_trigger_matches_a_file_dropped_under_its_prefix_only(
    stack: Stack, template: dict[str, Any], machine: str, prefix: str
) -> None:
    """The rule's pattern, on the events moto's bucket sends EventBridge for each object put."""
    import boto3

    (trigger,) = template["Resources"][machine]["Properties"]["Events"].values()
    pattern = stack.storage["resolver"].resolve(trigger["Properties"]["Pattern"])
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="trigger")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="trigger", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="trigger", Targets=[{"Id": "q", "Arn": arn}])
    for key in (f"{prefix}a.csv", "batch/scored/a.csv", "models/champion-x.json", f"x/{prefix}b.csv"):
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"h\n1\n")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["object"]["key"] for m in received] == [f"{prefix}a.csv"]


@pytest.mark.parametrize(
    ("machine", "names"),
    [
        ("PortfolioStateMachine", ("portfolio_file_created", "portfolio_batch", "portfolio_assemble")),
        ("OutcomesStateMachine", ("outcome_file_created", "outcome_file_batch", "outcome_file_assemble")),
    ],
)
def test_the_event_files_are_what_the_state_machine_sends(
    template: dict[str, Any], machine: str, names: tuple[str, str, str]
) -> None:
    """events/*_batch.json and *_assemble.json are the payloads the definition builds from the
    Object Created event in events/*_created.json (so `sam local invoke -e` gets real ones)."""
    created, batch, assembly = (load_event(n) for n in names)
    found = definition(template, machine)
    (mapped,) = [s for s in found["States"].values() if s["Type"] == "Map"]
    context = {"Execution": {"StartTime": assembly["started_at"]}}
    for index, item in enumerate(batch["Items"]):
        at = {**context, "Map": {"Item": {"Index": index, "Value": item["values"]}}}
        assert resolve(mapped["ItemSelector"], created, at) == item
    assert resolve(mapped["ItemBatcher"]["BatchInput"], created, context) == batch["BatchInput"]
    payload = found["States"][mapped["Next"]]["Parameters"]["Payload"]
    assert resolve(payload, {**created, "map": assembly["map"]}, context) == assembly
    assert assembly["map"]["ResultWriterDetails"]["Key"].startswith(
        mapped["ResultWriter"]["Parameters"]["Prefix"]
    )
