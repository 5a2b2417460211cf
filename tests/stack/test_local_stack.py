"""The local stack: storage made from the template's own definitions, the function served against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from credit_api.schema import EXAMPLE_APPLICANT

from infra.resources import Names, create_bucket, create_storage
from infra.template import ROOT, Resolver

HOST = "127.0.0.1"
FILE_RUN_PARTS = ("batch/results/", "outcomes/results/")
"""The file runs' scratch parts expire (credit_api/file_runs.py); nothing under models/ ever does."""
CREDIT = Path(sys.executable).with_name("credit")
"""The installed command line (``[project.scripts]``), as ``make local-stack`` runs it."""


def test_storage_gets_every_property_the_template_gives_it(storage: dict[str, Any]) -> None:
    s3, dynamodb, names = storage["s3"], storage["dynamodb"], storage["names"]
    template = storage["resolver"].template
    assert s3.get_bucket_versioning(Bucket=names.bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=names.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    expected = template["Resources"]["ModelBucket"]["Properties"]["BucketEncryption"]
    assert (
        rule["ApplyServerSideEncryptionByDefault"]
        == expected["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    )
    block = s3.get_public_access_block(Bucket=names.bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    }
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]}
    assert rules["expire-noncurrent-data"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert rules["expire-noncurrent-reports"]["Filter"] == {"Prefix": "reports/"}
    expiring = [r for r in rules.values() if "NoncurrentVersionExpiration" in r or "Expiration" in r]
    assert all(
        r["Filter"]["Prefix"] in ("data/", "reports/", *FILE_RUN_PARTS)
        for r in expiring
        if "NoncurrentVersionExpiration" in r
    )
    assert {
        rules[r]["Filter"]["Prefix"] for r in ("expire-file-run-parts", "expire-outcome-file-parts")
    } == set(FILE_RUN_PARTS)
    assert rules["remove-expired-delete-markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    table = dynamodb.describe_table(TableName=names.table)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "decision_id", "KeyType": "HASH"}]
    assert table["SSEDescription"]["Status"] == "ENABLED"
    backups = dynamodb.describe_continuous_backups(TableName=names.table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    pointer = json.loads(s3.get_object(Bucket=names.bucket, Key="models/champion.json")["Body"].read())
    assert pointer == storage["pointer"]
    assert (
        s3.get_object(Bucket=names.bucket, Key="data/credit.csv")["Body"].read()
        == (ROOT / "data" / "credit.csv").read_bytes()
    )


def test_the_decision_log_works_on_the_table_the_template_defines(storage: dict[str, Any]) -> None:
    from credit_api.decision_log import DynamoDecisionLog

    log = DynamoDecisionLog(storage["names"].table, client=storage["dynamodb"])
    record = {"decision_id": "d-1", "created_at": "2026-11-30T00:00:00Z", "model_version": "m", "inputs": {}}
    assert log.put(record) == (record, True)
    assert log.get("d-1")["model_version"] == "m"


def test_the_bucket_policy_is_resolved_not_attached(aws: None, template: dict[str, Any]) -> None:
    """moto mis-evaluates the policy's Condition (it would deny every request), so it is returned instead."""
    import boto3

    names = Names.for_stack("p")
    policy = create_storage(
        Resolver(template, names=names.as_refs()), boto3.client("s3"), boto3.client("dynamodb"), names
    )
    assert policy["Statement"][0]["Resource"] == ["arn:aws:s3:::p-models", "arn:aws:s3:::p-models/*"]
    with pytest.raises(Exception, match="NoSuchBucketPolicy"):
        boto3.client("s3").get_bucket_policy(Bucket=names.bucket)


def test_an_unknown_template_property_fails_loudly(aws: None) -> None:
    import boto3

    s3 = boto3.client("s3")
    with pytest.raises(NotImplementedError, match="WebsiteConfiguration"):
        create_bucket(s3, "website-bucket", {"WebsiteConfiguration": {}}, "us-east-1")
    assert s3.list_buckets()["Buckets"] == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def read_exports(path: Path) -> dict[str, str]:
    exports = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = value.strip("'")
    return exports


def start_stack(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env_file = tmp_path / "local-stack.env"
    process = subprocess.Popen(
        [str(CREDIT), "local-stack", "--port", str(port), "--env-file", str(env_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: env_file.exists() or process.poll() is not None, 60, "the local stack")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        return process, read_exports(env_file)
    except BaseException:
        kill_if_running(process)
        raise


def stop(process: subprocess.Popen[str], signum: int) -> str:
    """Send ``signum`` and expect a clean exit; a process that does not stop is killed, and fails the test."""
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, output
    return output


def kill_if_running(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_command_starts_the_stack_and_a_signal_stops_it(tmp_path: Path, signum: int) -> None:
    port = free_port()
    process, exports = start_stack(tmp_path, port)
    try:
        assert exports["AWS_ENDPOINT_URL"] == f"http://{HOST}:{port}"
        assert port_open(port)
        output = stop(process, signum)
    finally:
        kill_if_running(process)
    assert "local stack stopped" in output
    assert f"export MODEL_BUCKET={exports['MODEL_BUCKET']}" in output
    wait_for(lambda: not port_open(port), 10, "the port to close")


@pytest.mark.slow
def test_the_function_under_uvicorn_runs_against_the_local_stack(tmp_path: Path) -> None:
    """`make local-stack`, then uvicorn with the printed exports: model from "S3", decisions in "DynamoDB"."""
    process, exports = start_stack(tmp_path, free_port())
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_", "DECISIONS_"))}
    env.update(exports, DECISIONS_DB=str(tmp_path / "unused.sqlite3"), POWERTOOLS_TRACE_DISABLED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "credit_api.main:app", "--host", HOST, "--port", str(api_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(api_port), 60, "uvicorn")
        base = f"http://{HOST}:{api_port}"
        champion = f"s3://{exports['MODEL_BUCKET']}/models/"

        def health() -> dict[str, Any]:
            with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
                return json.load(response)

        # The bundled model may answer first (a cold start waits 2.5 s for S3); the champion follows.
        wait_for(lambda: health()["source"].startswith(champion), 60, "the S3 champion")
        assert health()["decision_log"] == "dynamodb"
        request = urllib.request.Request(
            f"{base}/predict",
            data=json.dumps(EXAMPLE_APPLICANT).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            decision = json.load(response)
        from infra.local_stack import clients

        _, dynamodb = clients(exports["AWS_ENDPOINT_URL"])
        item = dynamodb.get_item(
            TableName=exports["DECISIONS_TABLE"], Key={"decision_id": {"S": decision["decision_id"]}}
        )
        assert item["Item"]["decision"]["S"] == decision["decision"]
        assert not (tmp_path / "unused.sqlite3").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        try:
            stop(process, signal.SIGTERM)
        finally:
            kill_if_running(process)


def test_moto_storage_is_under_the_templates_key_and_logs_access(storage: dict[str, Any]) -> None:
    """The same key, rotation, table encryption and access logging the template deploys."""
    import boto3

    names, key_id = storage["names"], storage["resolver"].names["DataKey"]
    kms = boto3.client("kms")
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    (alias,) = [a for a in kms.list_aliases()["Aliases"] if a.get("TargetKeyId") == key_id]
    assert alias["AliasName"] == "alias/stack-test-data"
    key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    for table in (names.table, names.idempotency_table):
        sse = storage["dynamodb"].describe_table(TableName=table)["Table"]["SSEDescription"]
        assert sse["KMSMasterKeyArn"] == key_arn, table
    logging = storage["s3"].get_bucket_logging(Bucket=names.bucket)["LoggingEnabled"]
    assert logging == {"TargetBucket": names.access_log_bucket, "TargetPrefix": "model-bucket/"}
