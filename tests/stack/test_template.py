"""template.yaml against the code it deploys: routes, environment, storage, alarms, outputs."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.template import (
    NO_VALUE,
    ROOT,
    Resolver,
    UnresolvedError,
    function_environment,
    function_property,
    load_env_json,
    resources_of_type,
    sam_local_environment,
)
from infra.template import load as load_template

FUNCTION_DIR = ROOT / "function" / "credit_api"
OPEN_ROUTES = {("GET", "/"), ("GET", "/static/{name}"), ("GET", "/docs"), ("GET", "/openapi.json")}
OPEN_ROUTES |= {("GET", "/health"), ("GET", "/model")}  # the web page reads the model card unauthenticated
OPEN_ROUTES |= {("GET", "/monitoring")}  # linked from the page; aggregates only, no applicant's record
LOCAL_ONLY = {"AWS_ENDPOINT_URL", "MODEL_DIR", "RETRAIN_QUICK", "POWERTOOLS_TRACE_DISABLED", "REPORTS_DIR"}
"""Read by the code for local runs only (moto endpoint, another model directory, the reports
directory of `GET /monitoring` without a bucket, a quick search,
tracing off in tests)."""
RUNTIME = {"LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "AWS_EXECUTION_ENV"}
"""Set by the Lambda runtime (or by ``sam local``), never by the template."""
NEW_REFS = {"IdempotencyTable": "i", "RiskTeamApiKey": "k1"}


def test_loader_turns_short_tags_into_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "A: !Ref Bucket\nB: !GetAtt Table.Arn\nC: !Sub '${AWS::Region}-x'\n"
        "D: !If [IsProd, !Join ['-', [a, b]], !Ref AWS::NoValue]\nE: !Select [0, !Split [',', 'p,q']]\n"
    )
    assert load_template(path) == {
        "A": {"Ref": "Bucket"},
        "B": {"Fn::GetAtt": ["Table", "Arn"]},
        "C": {"Fn::Sub": "${AWS::Region}-x"},
        "D": {"Fn::If": ["IsProd", {"Fn::Join": ["-", ["a", "b"]]}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::Select": [0, {"Fn::Split": [",", "p,q"]}]},
    }


def test_resolver_evaluates_intrinsics_and_refuses_unknown_names() -> None:
    template = {
        "Parameters": {"Stage": {"Type": "String", "Default": "prod"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
        "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
    }
    resolver = Resolver(template, names={"Bucket": "b1"}, region="eu-west-1", account_id="111122223333")
    node = {
        "Arn": {"Fn::Sub": "${Bucket.Arn}/models/*"},
        "Where": {"Fn::Sub": ["${AWS::Region}:${X}:${!Literal}", {"X": {"Ref": "Stage"}}]},
        "Maybe": {"Fn::If": ["IsProd", {"Ref": "AWS::NoValue"}, "dev"]},
        "List": ["a", {"Ref": "AWS::NoValue"}, {"Fn::Join": ["/", ["x", {"Ref": "Bucket"}]]}],
    }
    assert resolver.resolve(node) == {
        "Arn": "arn:aws:s3:::b1/models/*",
        "Where": "eu-west-1:prod:${Literal}",
        "List": ["a", "x/b1"],
    }
    assert Resolver(template, parameters={"Stage": "dev"}).resolve({"Fn::If": ["IsProd", 1, 2]}) == 2
    assert resolver.ref("AWS::NoValue") is NO_VALUE
    with pytest.raises(UnresolvedError):
        resolver.resolve({"Ref": "Table"})
    with pytest.raises(UnresolvedError):
        Resolver(template, parameters={"Nope": 1}).parameter_values()


def _routes(routes: Any) -> set[tuple[str, str]]:
    """(method, path) of every route of an app, through included routers."""
    found = set()
    for route in routes:
        if hasattr(route, "methods") and hasattr(route, "path"):
            found |= {(m, route.path) for m in route.methods if m != "HEAD"}
        elif hasattr(route, "original_router"):
            found |= _routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            found |= _routes(route.routes)
    return found


def _api_events(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    events = template["Resources"]["PredictFunction"]["Properties"]["Events"]
    return {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"]): e["Properties"]
        for e in events.values()
        if e["Type"] == "Api"
    }


def test_every_route_of_the_app_is_an_api_event_and_nothing_else_is(template: dict[str, Any]) -> None:
    from credit_api.api import create_app
    from credit_api.settings import Settings

    app_routes = _routes(create_app(Settings()).routes)
    assert set(_api_events(template)) == app_routes


def test_scoring_routes_need_an_api_key_and_the_page_and_docs_do_not(template: dict[str, Any]) -> None:
    api = template["Resources"]["CreditApi"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    open_routes = {
        route
        for route, properties in _api_events(template).items()
        if properties.get("Auth", {}).get("ApiKeyRequired", True) is False
    }
    assert open_routes == OPEN_ROUTES
    assert {("POST", "/predict"), ("POST", "/predict/batch"), ("POST", "/outcomes")}.isdisjoint(open_routes)
    for event in _api_events(template).values():
        assert event["RestApiId"] == {"Ref": "CreditApi"}
    plan = api["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApiThrottleRateLimit"},
        "BurstLimit": {"Ref": "ApiThrottleBurstLimit"},
    }
    assert plan["Quota"] == {"Limit": {"Ref": "ApiQuotaPerDay"}, "Period": "DAY"}
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(api["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "apiKeyId", "resource"} <= set(fields)


def test_predict_function_is_the_zip_the_issue_describes(template: dict[str, Any]) -> None:
    properties = template["Resources"]["PredictFunction"]["Properties"]
    assert properties["CodeUri"] == "function/"
    assert properties["PackageType"] == "Zip"
    assert properties["Runtime"] == "python3.12"
    module, _, attribute = properties["Handler"].rpartition(".")
    assert module == "credit_api.main"
    tree = ast.parse((ROOT / "function" / Path(*module.split(".")).with_suffix(".py")).read_text())
    assigned = {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    assert attribute in assigned
    assert properties["MemorySize"] == 1769  # one full vCPU; see the comment in the template
    assert 3 <= properties["Timeout"] <= 29  # API Gateway's integration timeout is 29 s
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "PredictLogGroup"}}


def test_every_function_on_the_function_code_builds_through_its_makefile_with_bytecode(
    template: dict[str, Any], tmp_path: Path
) -> None:
    """``sam build`` runs ``make build-<LogicalId>`` in CodeUri for a makefile build: each such
    function needs the method and a target, and the target is the one recipe (wheels, bytecode)."""
    functions = resources_of_type(template, "AWS::Serverless::Function")
    on_code = sorted(n for n, r in functions.items() if r["Properties"].get("CodeUri") == "function/")
    assert len(on_code) == 6 and "PredictFunction" in on_code
    recipes = set()
    for name in on_code:
        assert functions[name].get("Metadata") == {"BuildMethod": "makefile"}, name
        dry = subprocess.run(
            ["make", "-n", "-C", str(ROOT / "function"), f"build-{name}", f"ARTIFACTS_DIR={tmp_path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr
        recipes.add(dry.stdout.replace(name, "<name>"))
    (recipe,) = recipes
    assert "pip install" in recipe and "--invalidation-mode unchecked-hash" in recipe


def test_retrain_function_is_a_scheduled_image_with_one_run_at_a_time(template: dict[str, Any]) -> None:
    function = template["Resources"]["RetrainFunction"]
    properties = function["Properties"]
    assert properties["PackageType"] == "Image"
    assert "Runtime" not in properties and "Handler" not in properties
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Timeout"] == 900
    assert function["Metadata"]["DockerContext"] == "."
    assert (ROOT / function["Metadata"]["Dockerfile"]).is_file()
    (event,) = properties["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "RetrainSchedule"}
    default = template["Parameters"]["RetrainSchedule"]["Default"]
    assert re.fullmatch(template["Parameters"]["RetrainSchedule"]["AllowedPattern"], default)


def test_storage_is_versioned_encrypted_private_and_recoverable(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ModelBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert any("NoncurrentVersionExpiration" in rule for rule in bucket["LifecycleConfiguration"]["Rules"])

    resolver = Resolver(template, names={"ModelBucket": "b"})
    (policy,) = (
        p
        for p in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "ModelBucket"}
    )
    document = resolver.resolve(policy["Properties"])
    assert document["Bucket"] == "b"
    (statement,) = document["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert sorted(statement["Resource"]) == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    table = template["Resources"]["DecisionsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["KeySchema"] == [{"AttributeName": "decision_id", "KeyType": "HASH"}]
    for name in ("ModelBucket", "DecisionsTable"):
        assert template["Resources"][name]["DeletionPolicy"] == "Retain"


def _env_names_read(paths: list[Path]) -> set[str]:
    """Variable names the code reads: ``os.environ["X"]``, ``env["X"]``, ``.get("X")``, ``getenv("X")``,
    and ``seconds("X", default)`` (Settings' reader of intervals)."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            argument = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("get", "getenv", "seconds"):
                    argument = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in (
                "os.environ",
                "environ",
                "env",
            ):
                argument = node.slice
            if (
                isinstance(argument, ast.Constant)
                and isinstance(argument.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", argument.value)
            ):
                names.add(argument.value)
    return names


def _library_reads(name: str) -> bool:
    """Whether Powertools reads ``name`` itself (``LOG_LEVEL`` is its legacy log level variable)."""
    from aws_lambda_powertools.shared import constants

    return name in {v for v in vars(constants).values() if isinstance(v, str)}


def test_every_variable_the_function_reads_is_in_the_template_and_none_is_unused(
    template: dict[str, Any],
) -> None:
    from credit_api.settings import ENVIRONMENT_VARIABLES

    read = _env_names_read(sorted(FUNCTION_DIR.glob("*.py")))
    assert set(ENVIRONMENT_VARIABLES) <= read  # the settings' list is what the code reads
    env = function_environment(
        Resolver(template, names={"ModelBucket": "b", "DecisionsTable": "t", **NEW_REFS}), "PredictFunction"
    )
    assert read - LOCAL_ONLY - RUNTIME <= set(env)
    assert all(name in read or _library_reads(name) for name in env), env
    assert env["MODEL_BUCKET"] == "b" and env["DECISIONS_TABLE"] == "t"
    assert float(env["MODEL_REFRESH_SECONDS"]) == template["Parameters"]["ModelRefreshSeconds"]["Default"]


def test_every_variable_the_retrain_reads_is_in_the_template(template: dict[str, Any]) -> None:
    read = _env_names_read([ROOT / "training" / "retrain.py", ROOT / "training" / "monitor.py"])
    env = function_environment(
        Resolver(template, names={"ModelBucket": "b", "DecisionsTable": "t"}), "RetrainFunction"
    )
    assert {"MODEL_BUCKET", "DECISIONS_TABLE", "POWERTOOLS_SERVICE_NAME"} <= read
    assert read - LOCAL_ONLY - RUNTIME <= set(env)
    assert all(name in read or _library_reads(name) for name in env), env


def test_env_json_overrides_only_what_sam_local_can_override(template: dict[str, Any]) -> None:
    env_vars = load_env_json()
    assert set(env_vars) <= set(resources_of_type(template, "AWS::Serverless::Function")) | {"Parameters"}
    resolver = Resolver(
        template, names={"ModelBucket": "ModelBucket", "DecisionsTable": "DecisionsTable", **NEW_REFS}
    )
    for function, overrides in env_vars.items():
        declared = function_environment(resolver, function)
        assert set(overrides) <= set(declared), f"SAM ignores {set(overrides) - set(declared)}"
    local = sam_local_environment(resolver, "PredictFunction", env_vars)
    assert local["MODEL_BUCKET"] == "" and local["DECISIONS_TABLE"] == ""  # bundled model, SQLite log
    assert local["DECISIONS_DB"].startswith("/tmp/")  # Lambda's only writable directory


def test_retrain_event_is_a_real_scheduled_event_for_the_templates_rule(template: dict[str, Any]) -> None:
    event = json.loads((ROOT / "events" / "retrain.json").read_text())
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["detail"] == {}
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    (rule_arn,) = event["resources"]
    (schedule,) = template["Resources"]["RetrainFunction"]["Properties"]["Events"].values()
    rule_name = Resolver(template, stack_name="credit-risk").resolve(schedule["Properties"]["Name"])
    assert rule_arn == f"arn:aws:events:{event['region']}:{event['account']}:rule/{rule_name}"


def _alarm(template: dict[str, Any], namespace: Any, metric: str, dimension_value: Any) -> dict[str, Any]:
    matches = [
        a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if "Metrics" not in a["Properties"]  # metric-math alarms: see the model-load test
        and a["Properties"]["Namespace"] == namespace
        and a["Properties"]["MetricName"] == metric
        and any(d["Value"] == dimension_value for d in a["Properties"]["Dimensions"])
    ]
    assert len(matches) == 1, (namespace, metric, dimension_value)
    return matches[0]


def test_alarms_watch_the_api_the_functions_drift_and_the_retrain(template: dict[str, Any]) -> None:
    from training import monitor

    api_name = template["Resources"]["CreditApi"]["Properties"]["Name"]
    _alarm(template, "AWS/ApiGateway", "5XXError", api_name)
    _alarm(template, "AWS/Lambda", "Errors", {"Ref": "PredictFunction"})
    _alarm(template, "AWS/Lambda", "Throttles", {"Ref": "PredictFunction"})
    _alarm(template, "AWS/Lambda", "Errors", {"Ref": "RetrainFunction"})
    service = template["Resources"]["MonitorFunction"]["Properties"]["Environment"]["Variables"]
    drift = _alarm(template, {"Ref": "MetricsNamespace"}, "DriftPsiMax", service["POWERTOOLS_SERVICE_NAME"])
    assert drift["Threshold"] == monitor.DRIFT_ALERT == 0.25
    assert drift["ComparisonOperator"] == "GreaterThanThreshold"
    # the daily monitor feeds it: a day without a figure (a crashed run) must page, not go quiet
    assert drift["TreatMissingData"] == "breaching"
    assert drift["Period"] == 86400
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_model_load_alarm_adds_the_metrics_the_store_counts(template: dict[str, Any]) -> None:
    """Requests succeed on the bundled model, so only these counters show that S3 or a new
    champion failed; the alarm must name exactly what model_store.py counts."""
    source = (FUNCTION_DIR / "model_store.py").read_text()
    alarm = template["Resources"]["ModelLoadAlarm"]["Properties"]
    stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    service = template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    for stat in stats:
        metric = stat["Metric"]
        assert f'"{metric["MetricName"]}"' in source
        assert metric["Namespace"] == {"Ref": "MetricsNamespace"}
        assert metric["Dimensions"] == [{"Name": "service", "Value": service["POWERTOOLS_SERVICE_NAME"]}]
        assert stat["Stat"] == "Sum"
    assert {s["Metric"]["MetricName"] for s in stats} == {
        "ModelFallbackToBundled",
        "ModelLoadFailures",
        "ModelRefreshFailures",
    }
    assert next(m for m in alarm["Metrics"] if m.get("ReturnData", True))["Expression"].count("FILL") == 3


def test_outputs_give_the_url_bucket_table_and_key(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"ApiUrl", "ModelBucketName", "DecisionsTableName", "ApiKeyId"} <= set(outputs)
    resolver = Resolver(
        template,
        names={"CreditApi": "abc123", "ModelBucket": "b", "DecisionsTable": "t", "CreditApiApiKey": "k"},
    )
    assert (
        resolver.resolve(outputs["ApiUrl"]["Value"])
        == "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
    )
    assert resolver.resolve(outputs["ApiKeyId"]["Value"]) == "k"  # SAM's PER_API key: <api id>ApiKey
    assert function_property(template, "PredictFunction", "Tracing") == "Active"


def test_samconfig_builds_and_deploys_this_template(template: dict[str, Any]) -> None:
    import tomllib

    config = tomllib.loads((ROOT / "infra" / "samconfig.toml").read_text())
    default = config["default"]
    assert (ROOT / default["global"]["parameters"]["template_file"]).resolve() == (ROOT / "template.yaml")
    deploy = default["deploy"]["parameters"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]  # the template creates roles
    assert deploy["resolve_image_repos"] is True  # the RetrainFunction image needs an ECR repository
    for environment in (v for v in config.values() if isinstance(v, dict)):
        overrides = environment.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        assert {pair.split("=")[0] for pair in overrides.split()} <= set(template["Parameters"])
    for command in ("local_invoke", "local_start_api"):
        assert (ROOT / default[command]["parameters"]["env_vars"]).resolve() == ROOT / "infra" / "env.json"


def _log_group_arns(resolver: Resolver) -> set[str]:
    groups = resources_of_type(resolver.template, "AWS::Logs::LogGroup").values()
    return {
        f"arn:aws:logs:{resolver.region}:{resolver.account_id}:log-group:"
        + resolver.resolve(group["Properties"]["LogGroupName"])
        for group in groups
    }


def test_applicant_data_and_logs_are_under_the_stacks_rotating_key(template: dict[str, Any]) -> None:
    """Both tables hold applicant inputs or what points at them; the key is ours, so is its policy."""
    data_key = {"Fn::GetAtt": ["DataKey", "Arn"]}
    for table in ("DecisionsTable", "IdempotencyTable"):
        sse = template["Resources"][table]["Properties"]["SSESpecification"]
        assert sse == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": data_key}, table
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert groups and all(g["Properties"]["KmsKeyId"] == data_key for g in groups.values())
    queue = template["Resources"]["RetrainDeadLetterQueue"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Ref": "DataKey"}

    key = template["Resources"]["DataKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"  # deleting it would make the retained tables unreadable
    resolver = Resolver(template, stack_name="credit-risk")
    root, logs = resolver.resolve(key["Properties"]["KeyPolicy"])["Statement"]
    assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"} and root["Action"] == "kms:*"
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert "kms:*" not in logs["Action"]
    # The condition names exactly this stack's log groups: renaming one without the other fails here.
    assert set(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]) == _log_group_arns(
        resolver
    )


def test_predict_concurrency_is_reserved_by_a_parameter(template: dict[str, Any]) -> None:
    properties = template["Resources"]["PredictFunction"]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == {"Ref": "PredictReservedConcurrency"}
    parameter = template["Parameters"]["PredictReservedConcurrency"]
    assert parameter["MinValue"] <= parameter["Default"] <= parameter["MaxValue"]
    # Reaching it throttles, and throttles page: the alarm is what makes the cap visible.
    _alarm(template, "AWS/Lambda", "Throttles", {"Ref": "PredictFunction"})


def test_a_failed_retrain_event_is_dead_lettered_and_pages(template: dict[str, Any]) -> None:
    properties = template["Resources"]["RetrainFunction"]["Properties"]
    assert properties["DeadLetterQueue"] == {
        "Type": "SQS",
        "TargetArn": {"Fn::GetAtt": ["RetrainDeadLetterQueue", "Arn"]},
    }
    assert template["Resources"]["RetrainDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    alarm = _alarm(
        template,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"Fn::GetAtt": ["RetrainDeadLetterQueue", "QueueName"]},
    )
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_model_bucket_logs_access_to_a_private_expiring_log_bucket(template: dict[str, Any]) -> None:
    logging = template["Resources"]["ModelBucket"]["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    logs = template["Resources"]["AccessLogBucket"]["Properties"]
    assert "LoggingConfiguration" not in logs  # a log bucket logging to itself loops
    assert set(logs["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(logs["PublicAccessBlockConfiguration"]) == 4
    assert logs["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (encryption,) = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # S3 logs only to SSE-S3
    (rule,) = logs["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] >= 1

    resolver = Resolver(template, names={"ModelBucket": "models", "AccessLogBucket": "logs"})
    (policy,) = (
        resolver.resolve(p["Properties"])
        for p in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "AccessLogBucket"}
    )
    delivery, insecure = policy["PolicyDocument"]["Statement"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == f"arn:aws:s3:::logs/{logging['LogFilePrefix']}*"
    assert delivery["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:s3:::models"}
    assert insecure["Effect"] == "Deny" and insecure["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
