"""cfn-lint and SAM's validation pass, and the CloudFormation SAM generates means what the template says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.template import ROOT
from tests.stack.test_template import OPEN_ROUTES

pytestmark = pytest.mark.slow
OPEN_PATHS = {path for _method, path in OPEN_ROUTES}
"""The routes anyone may call (tests/stack/test_template.py): the generated API must agree."""


def run(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_cfn_lint_passes(sam_bin: Path, tool_env: dict[str, str]) -> None:
    result = run([str(sam_bin / "cfn-lint"), "template.yaml"], tool_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_with_lint_passes(sam_bin: Path, tool_env: dict[str, str]) -> None:
    result = run([str(sam_bin / "sam"), "validate", "--lint"], tool_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_translates_the_template(sam_bin: Path, tool_env: dict[str, str]) -> None:
    """Plain ``sam validate`` runs SAM's translator, which needs a region (any will do offline)."""
    result = run([str(sam_bin / "sam"), "validate", "--region", "us-east-1"], tool_env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def transformed(sam_bin: Path, tool_env: dict[str, str]) -> dict[str, Any]:
    result = run(
        [str(sam_bin / "python"), "infra/sam_transform.py"], {**tool_env, "AWS_DEFAULT_REGION": "us-east-1"}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_generated_api_requires_the_key_on_scoring_methods_only(transformed: dict[str, Any]) -> None:
    body = transformed["Resources"]["CreditApi"]["Properties"]["Body"]
    assert body["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            needs_key = operation.get("security") == [{"api_key": []}]
            assert needs_key is (path not in OPEN_PATHS), (method, path, operation.get("security"))


def test_generated_usage_plan_key_and_stage(transformed: dict[str, Any], template: dict[str, Any]) -> None:
    """SAM substitutes the usage plan's parameters itself (defaults here, deploy-time values in AWS)."""
    defaults = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    resources = transformed["Resources"]
    plan = resources["CreditApiUsagePlan"]["Properties"]
    assert plan["Throttle"] == {
        "RateLimit": defaults["ApiThrottleRateLimit"],
        "BurstLimit": defaults["ApiThrottleBurstLimit"],
    }
    assert plan["Quota"] == {"Limit": defaults["ApiQuotaPerDay"], "Period": "DAY"}
    assert resources["CreditApiApiKey"]["Type"] == "AWS::ApiGateway::ApiKey"  # the ApiKeyId output
    assert resources["CreditApiUsagePlanKey"]["Properties"]["KeyId"] == {"Ref": "CreditApiApiKey"}
    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    (stage,) = stages  # OpenApiVersion keeps SAM from adding a stage named "Stage"
    assert stage["Properties"]["StageName"] == {"Ref": "Stage"}
    assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    assert stage["Properties"]["TracingEnabled"] is True


def test_generated_roles_hold_only_the_templates_statements_logs_and_xray(
    transformed: dict[str, Any],
) -> None:
    """Besides the template's own statements SAM adds only the retrain's SendMessage to its DLQ."""
    dead_letters = {
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["RetrainDeadLetterQueue", "Arn"]},
        "Effect": "Allow",
    }
    for function, added in (("PredictFunction", set()), ("RetrainFunction", {"DeadLetterQueuePolicy"})):
        role = transformed["Resources"][f"{function}Role"]["Properties"]
        assert sorted(a.rpartition("/")[2] for a in role["ManagedPolicyArns"]) == [
            "AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess",
        ]
        policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]}
        assert set(policies) == {f"{function}RolePolicy0"} | added
        assert all(s["Effect"] == "Allow" for s in policies[f"{function}RolePolicy0"])
    assert policies["DeadLetterQueuePolicy"] == [dead_letters]
    schedule = transformed["Resources"]["RetrainFunctionSchedule"]
    assert schedule["Type"] == "AWS::Events::Rule"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "RetrainSchedule"}


def test_api_integrates_with_the_snapstart_alias_not_latest(transformed: dict[str, Any]) -> None:
    """SnapStart applies to published versions only, so every API method must call the ``live`` alias."""
    resources = transformed["Resources"]
    alias = resources["PredictFunctionAliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert resources["PredictFunction"]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    body = resources["CreditApi"]["Properties"]["Body"]
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert "${PredictFunctionAliaslive}" in uri, (method, path, uri)
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    predict = [p for p in permissions if "PredictFunction" in json.dumps(p["Properties"]["FunctionName"])]
    assert predict and all(
        p["Properties"]["FunctionName"] == {"Ref": "PredictFunctionAliaslive"} for p in predict
    )
