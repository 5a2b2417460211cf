"""The functions' IAM policies allow exactly the AWS calls their code makes, on exactly their resources.

The one exception is KMS: the code never calls it, DynamoDB and SQS do with the function's
credentials (the tables and the dead-letter queue use the stack's own key). Those grants are
checked apart: on ``DataKey`` only, and only through a service the function uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.template import ROOT, Resolver, function_environment
from tests.stack.aws_calls import (
    allowed,
    iam_action,
    policy_actions,
    reachable,
    recorded_calls,
    static_calls,
)
from tests.support import LambdaContext, for_decision, load_event, response_json

FUNCTION_CODE = sorted((ROOT / "function" / "credit_api").glob("*.py"))
TRAINING_CODE = sorted((ROOT / "training").glob("*.py"))
EVENT_ORDER = (
    "predict",
    "decision",
    "outcome",
    "outcome_batch",
    "predict_batch",
    "predict_stage",
    "predict_http_api",
    "health",
    "model",
    "page",
)


NAMES = {"ModelBucket": "b", "DecisionsTable": "t", "IdempotencyTable": "i", "RiskTeamApiKey": "k1"}
NAMES |= {"DataKey": "key-1"}
DATA_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/key-1"


def _through_a_service(statement: dict[str, Any]) -> bool:
    return "kms:ViaService" in statement.get("Condition", {}).get("StringEquals", {})


def all_statements(resolver: Resolver, function: str) -> list[dict[str, Any]]:
    """The function's inline policy statements, resolved (SAM adds logs, X-Ray and the DLQ's SendMessage)."""
    policies = resolver.template["Resources"][function]["Properties"]["Policies"]
    return [s for policy in resolver.resolve(policies) for s in policy["Statement"]]


def statements(resolver: Resolver, function: str) -> list[dict[str, Any]]:
    """The statements for the calls the code itself makes: all but those used through another service."""
    return [s for s in all_statements(resolver, function) if not _through_a_service(s)]


def code_actions(roots: list[Path], paths: list[Path]) -> set[str]:
    return {iam_action(*call) for call in static_calls(reachable(paths, roots))}


def test_predict_policy_grants_exactly_the_calls_in_the_handlers_code(template: dict[str, Any]) -> None:
    actions = code_actions([ROOT / "function" / "credit_api" / "main.py"], FUNCTION_CODE)
    assert actions == policy_actions(statements(Resolver(template, names=NAMES), "PredictFunction"))
    assert "s3:PutObject" not in actions  # model_store.publish is reachable from the retrain only


def test_retrain_policy_grants_exactly_the_calls_in_the_retrains_code(template: dict[str, Any]) -> None:
    actions = code_actions([ROOT / "training" / "retrain.py"], FUNCTION_CODE + TRAINING_CODE)
    assert actions == policy_actions(statements(Resolver(template, names=NAMES), "RetrainFunction"))


def _kms_grants(template: dict[str, Any], function: str) -> dict[str, set[str]]:
    """Service each KMS grant works through -> its actions; each grant is on DataKey only."""
    grants: dict[str, set[str]] = {}
    for statement in all_statements(Resolver(template, names=NAMES), function):
        if _through_a_service(statement):
            assert statement["Resource"] == DATA_KEY_ARN, statement
            service = statement["Condition"]["StringEquals"]["kms:ViaService"]
            grants[service] = set(policy_actions([statement]))
    return grants


def test_the_functions_use_the_data_key_only_through_dynamodb_and_the_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    """Predict writes and reads the tables; the retrain only reads them, and sends failures to its DLQ."""
    assert _kms_grants(template, "PredictFunction") == {
        "dynamodb.us-east-1.amazonaws.com": {"kms:Decrypt", "kms:GenerateDataKey"}
    }
    assert _kms_grants(template, "RetrainFunction") == {
        "dynamodb.us-east-1.amazonaws.com": {"kms:Decrypt"},
        "sqs.us-east-1.amazonaws.com": {"kms:Decrypt", "kms:GenerateDataKey"},
    }


def test_every_call_the_function_sends_is_allowed_on_its_resource(storage: dict[str, Any]) -> None:
    """The real handler against the template's storage in moto, every route; each call checked."""
    from credit_api.api import create_app
    from credit_api.main import make_handler
    from credit_api.settings import Settings

    resolver = storage["resolver"]
    handler = make_handler(create_app(Settings.from_env(function_environment(resolver, "PredictFunction"))))
    retried_batch = load_event("predict_batch")
    retried_batch["headers"] = {**retried_batch["headers"], "Idempotency-Key": "batch-retry-1"}
    with recorded_calls() as calls:
        decision_id = ""
        for name in EVENT_ORDER:
            response = handler(for_decision(load_event(name), decision_id), LambdaContext())
            assert response["statusCode"] == 200, (name, response["body"][:300])
            decision_id = decision_id or response_json(response)["decision_id"]
        for _ in range(2):
            assert handler(retried_batch, LambdaContext())["statusCode"] == 200
    policy = statements(resolver, "PredictFunction")
    denied = [
        c for c in calls if not allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id))
    ]
    assert denied == []
    sent = {c.action() for c in calls}
    assert sent == policy_actions(policy)  # every permission is used, and no call lacks one
    assert {c.params["Key"] for c in calls if c.service == "s3"} >= {"models/champion.json"}


def test_the_analysis_follows_imports_and_ignores_code_the_handler_never_reaches(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "main.py").write_text("from pkg.store import load\n\nhandler = load\n")
    (package / "retrain.py").write_text("from pkg.store import publish\n")
    (package / "store.py").write_text(
        "def load(s3):\n    return s3.get_object(Bucket='b', Key='k')\n\n\n"
        "def publish(s3, table):\n    s3.put_object(Bucket='b', Key='k', Body=b'')\n"
        "    return table.meta.client.get_paginator('scan')\n"
    )
    files = sorted(package.glob("*.py"))
    assert code_actions([package / "main.py"], files) == {"s3:GetObject"}
    assert code_actions([package / "retrain.py"], files) == {"s3:PutObject", "dynamodb:Scan"}


def test_the_policy_check_refuses_a_call_outside_the_granted_prefix(template: dict[str, Any]) -> None:
    policy = statements(Resolver(template, names=NAMES), "PredictFunction")
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::b/models/champion.json")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b/data/credit.csv")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::b/models/champion.json")
    assert not allowed(policy, "dynamodb:Scan", "arn:aws:dynamodb:us-east-1:123456789012:table/t")


def test_the_monitoring_page_reads_only_what_its_grant_allows(storage: dict[str, Any]) -> None:
    """``GET /monitoring`` against the template's bucket: the pointer and the report, both granted."""
    from credit_api.api import create_app
    from credit_api.main import make_handler
    from credit_api.settings import Settings

    resolver, s3, bucket = storage["resolver"], storage["s3"], storage["names"].bucket
    day = "reports/monitoring/2026-12-01"
    s3.put_object(Bucket=bucket, Key=f"{day}/report.html", Body=b"<!doctype html><p>report</p>")
    latest = {
        "date": "2026-12-01",
        "html": f"{day}/report.html",
        "json": f"{day}/report.json",
        "status": "green",
    }
    s3.put_object(Bucket=bucket, Key="reports/monitoring/latest.json", Body=json.dumps(latest).encode())
    handler = make_handler(create_app(Settings.from_env(function_environment(resolver, "PredictFunction"))))
    event = load_event("page", path="/monitoring")
    with recorded_calls() as calls:
        response = handler(event, LambdaContext())
    assert response["statusCode"] == 200, response["body"][:300]
    policy = statements(resolver, "PredictFunction")
    reads = [c for c in calls if c.service == "s3" and c.params["Key"].startswith("reports/")]
    assert [c.params["Key"] for c in reads] == ["reports/monitoring/latest.json", f"{day}/report.html"]
    assert all(allowed(policy, c.action(), c.resource(resolver.region, resolver.account_id)) for c in reads)
    assert not allowed(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/reports/fairness.json")
