"""The ops function: events/rollback.json and a history event through the handler the template names,
against the template's bucket in moto, each AWS call checked against the OpsFunction's policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from credit_api import registry
from credit_api.manifest import MANIFEST_FILE

from infra.resources import Names, create_bucket
from infra.template import ROOT, Resolver, function_environment, function_property, load
from tests.function.conftest import BUNDLED
from tests.stack.aws_calls import allowed, iam_action, policy_actions, reachable, recorded_calls, static_calls
from tests.support import LambdaContext, load_event

FUNCTION = "OpsFunction"
FUNCTION_CODE = sorted((ROOT / "function" / "credit_api").glob("*.py"))


NAMES = Names.for_stack("ops-test")
RESOLVER = Resolver(load(), names=NAMES.as_refs(), region="us-east-1", stack_name="ops-test")


@pytest.fixture(scope="module")
def client() -> Any:
    """One S3 client for the module (moto first, so each test's mock covers it)."""
    import boto3
    import moto  # noqa: F401

    return boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def stack(aws: None, client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The template's bucket in moto with two champions published, and the OpsFunction's environment."""
    names, resolver, s3 = NAMES, RESOLVER, client
    properties = resolver.resolve(resolver.template["Resources"]["ModelBucket"]["Properties"])
    # The access-log bucket is not needed here (infra.resources.create_storage makes both).
    properties.pop("LoggingConfiguration")
    create_bucket(s3, names.bucket, properties, resolver.region)
    for version in ("champion-1", "champion-2"):
        directory = tmp_path / version
        shutil.copytree(BUNDLED, directory)
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, "model_version": version}))
        registry.publish(s3, names.bucket, directory, by="test", reason=f"ship {version}")
    for name, value in function_environment(resolver, FUNCTION).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return {"s3": s3, "bucket": names.bucket, "resolver": resolver}


def handler() -> Any:
    from importlib import import_module

    module, _, name = function_property(load(), FUNCTION, "Handler").rpartition(".")
    return getattr(import_module(module), name)


def statements(resolver: Resolver) -> list[dict[str, Any]]:
    policies = resolver.template["Resources"][FUNCTION]["Properties"]["Policies"]
    return [s for policy in resolver.resolve(policies) for s in policy["Statement"]]


def test_the_rollback_event_rolls_back_and_the_history_event_shows_it(stack: dict[str, Any]) -> None:
    event = load_event("rollback")
    context = LambdaContext(function_name=FUNCTION)
    with recorded_calls() as calls:
        answer = handler()(event, context)
        listed = handler()({"action": "history", "limit": 2}, context)
    assert answer["status"] == 200, answer
    assert answer["champion"]["model_version"] == "champion-1"
    assert answer["champion"]["change"]["by"] == f"{event['by']} via OpsFunction {context.aws_request_id}"
    assert answer["champion"]["change"]["reason"] == event["reason"]
    assert listed["status"] == 200
    assert [(e["action"], e["version"], e["previous"]) for e in listed["entries"]] == [
        ("rollback", "champion-1", "champion-2"),
        ("promote", "champion-2", "champion-1"),
    ]
    json.dumps(listed)  # what Lambda returns must be JSON

    resolver = stack["resolver"]
    policy = statements(resolver)
    denied = [
        c for c in calls if not allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id))
    ]
    assert denied == []
    sent = {c.action() for c in calls}
    assert sent == policy_actions(policy) - {"s3:ListBucket"}  # listing versions: only for --to by name
    written = {c.params["Key"] for c in calls if c.operation == "PutObject"}
    assert written == {"models/champion.json"}


def test_the_policy_grants_what_the_ops_code_can_call() -> None:
    """Statically: every call reachable from the handler; reading by VersionId shows only when sent."""
    code = {
        iam_action(*c) for c in static_calls(reachable(FUNCTION_CODE, [ROOT / "function/credit_api/ops.py"]))
    }
    assert code == policy_actions(statements(RESOLVER)) - {"s3:GetObjectVersion"}


def test_a_named_rollback_lists_versions_within_the_policy(stack: dict[str, Any]) -> None:
    s3, bucket = stack["s3"], stack["bucket"]
    registry.rollback(s3, bucket, by="t", reason="r")  # champion-1, with champion-2 off the lineage
    with recorded_calls() as calls:
        answer = handler()({"action": "rollback", "to": "champion-2", "reason": "fixed"}, LambdaContext())
    assert answer["status"] == 200 and answer["champion"]["model_version"] == "champion-2"
    resolver = stack["resolver"]
    policy = statements(resolver)
    assert "s3:ListBucket" in {c.action() for c in calls}
    assert all(allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id)) for c in calls)


BAD_EVENTS = [
    ([], 400, "JSON object"),
    ({"action": "delete"}, 400, "'action' must be"),
    ({"action": "rollback"}, 400, "'reason' must be"),
    ({"action": "rollback", "reason": "r", "to": 3}, 400, "'to' must be"),
    ({"action": "rollback", "reason": "x" * 501}, 400, "longer than 500"),
    ({"action": "history", "limit": 0}, 400, "'limit' must be"),
    ({"action": "rollback", "reason": "r", "to": "nope"}, 404, "no stored model version"),
]


def test_a_bad_event_is_answered_not_raised(stack: dict[str, Any]) -> None:
    before = stack["s3"].get_object(Bucket=stack["bucket"], Key="models/champion.json")["Body"].read()
    for event, status, message in BAD_EVENTS:
        answer = handler()(event, LambdaContext())
        assert answer["status"] == status and message in answer["error"], (event, answer)
    after = stack["s3"].get_object(Bucket=stack["bucket"], Key="models/champion.json")["Body"].read()
    assert after == before


def test_a_tampered_target_is_refused_with_422(stack: dict[str, Any]) -> None:
    s3, bucket = stack["s3"], stack["bucket"]
    target = registry.read_champion(s3, bucket).pointer["lineage"][-1]
    s3.put_object(Bucket=bucket, Key=f"{target['key']}/model.onnx", Body=b"not a model")
    answer = handler()(load_event("rollback"), LambdaContext())
    assert answer["status"] == 422 and "fails verification" in answer["error"]
    assert registry.read_champion(s3, bucket).version == "champion-2"
