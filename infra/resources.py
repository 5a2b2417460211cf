"""Create the template's key, buckets and tables through the AWS APIs, from their own CFN properties.

Used by the local stack (against a moto server) and by the tests (moto in-process), so both
run against the same storage the template deploys: versioned, encrypted with the stack's own
KMS key, private, access-logged, with the same key schema. Each CloudFormation property is
translated to the API call that sets it; a property this module does not know raises, so the
template cannot silently outgrow it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from infra.template import Resolver, resources_of_type

BUCKET = "ModelBucket"
ACCESS_LOG_BUCKET = "AccessLogBucket"
DATA_KEY = "DataKey"
DATA_KEY_ALIAS = "DataKeyAlias"
TABLE = "DecisionsTable"
IDEMPOTENCY_TABLE = "IdempotencyTable"
RISK_KEY = "RiskTeamApiKey"
LOCAL_RISK_KEY_ID = "local-risk-team"
"""What ``Ref RiskTeamApiKey`` stands for locally (no API Gateway: every local caller is "")."""


@dataclass(frozen=True)
class Names:
    """Physical names of the stack's storage, as ``Ref`` returns them."""

    bucket: str
    table: str
    idempotency_table: str = ""
    access_log_bucket: str = ""

    @classmethod
    def for_stack(cls, stack_name: str) -> Names:
        return cls(
            bucket=f"{stack_name}-models",
            table=f"{stack_name}-decisions",
            idempotency_table=f"{stack_name}-idempotency",
            access_log_bucket=f"{stack_name}-access-logs",
        )

    def as_refs(self) -> dict[str, str]:
        """What ``Ref`` returns for each resource; the KMS key's id exists only once it is created."""
        return {
            BUCKET: self.bucket,
            TABLE: self.table,
            IDEMPOTENCY_TABLE: self.idempotency_table,
            ACCESS_LOG_BUCKET: self.access_log_bucket,
            RISK_KEY: LOCAL_RISK_KEY_ID,
        }


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One ``LifecycleConfiguration.Rules`` item in the shape ``PutBucketLifecycleConfiguration`` takes."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": ""}}
    for key, value in rule.items():
        if key in ("Id", "Status"):
            continue
        if key == "Prefix":
            out["Filter"] = {"Prefix": value}
        elif key == "NoncurrentVersionExpiration":
            out[key] = {k: int(v) for k, v in value.items()}
        elif key == "AbortIncompleteMultipartUpload":
            out[key] = {"DaysAfterInitiation": int(value["DaysAfterInitiation"])}
        elif key == "ExpiredObjectDeleteMarker":
            out["Expiration"] = {"ExpiredObjectDeleteMarker": bool(value)}
        elif key == "ExpirationInDays":
            out["Expiration"] = {"Days": int(value)}
        else:
            raise NotImplementedError(f"{BUCKET} lifecycle rule property {key} has no local translation")
    return out


def _encryption(config: Mapping[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in config["ServerSideEncryptionConfiguration"]:
        translated: dict[str, Any] = {
            "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]
        }
        if "BucketKeyEnabled" in rule:
            translated["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
        rules.append(translated)
    return {"Rules": rules}


def create_bucket(s3: Any, name: str, properties: Mapping[str, Any], region: str) -> None:
    """Create ``name`` and apply each of the template's ``AWS::S3::Bucket`` properties.

    Every property is translated before anything is created, so an unknown one leaves no bucket.
    """
    calls: list[tuple[str, dict[str, Any]]] = []
    for key, value in properties.items():
        if key == "VersioningConfiguration":
            calls.append(("put_bucket_versioning", {"VersioningConfiguration": {"Status": value["Status"]}}))
        elif key == "BucketEncryption":
            calls.append(("put_bucket_encryption", {"ServerSideEncryptionConfiguration": _encryption(value)}))
        elif key == "PublicAccessBlockConfiguration":
            block = {k: bool(v) for k, v in value.items()}
            calls.append(("put_public_access_block", {"PublicAccessBlockConfiguration": block}))
        elif key == "OwnershipControls":
            calls.append(("put_bucket_ownership_controls", {"OwnershipControls": value}))
        elif key == "LifecycleConfiguration":
            rules = [_lifecycle_rule(r) for r in value["Rules"]]
            calls.append(("put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": rules}}))
        elif key == "LoggingConfiguration":
            enabled = {
                "TargetBucket": value["DestinationBucketName"],
                "TargetPrefix": value.get("LogFilePrefix", ""),
            }
            calls.append(("put_bucket_logging", {"BucketLoggingStatus": {"LoggingEnabled": enabled}}))
        elif key == "NotificationConfiguration":
            # Object Created events to EventBridge (the portfolio and outcome-file state machines).
            enabled = value.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") is True
            notifications = {"NotificationConfiguration": {"EventBridgeConfiguration": {}} if enabled else {}}
            calls.append(("put_bucket_notification_configuration", notifications))
        else:
            raise NotImplementedError(f"{BUCKET} property {key} has no local translation")
    params: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**params)
    for method, kwargs in calls:
        getattr(s3, method)(Bucket=name, **kwargs)


def create_table(dynamodb: Any, name: str, properties: Mapping[str, Any]) -> None:
    """Create ``name`` with the template's ``AWS::DynamoDB::Table`` properties, then PITR and TTL."""
    params: dict[str, Any] = {"TableName": name}
    after: list[tuple[str, dict[str, Any]]] = []
    for key, value in properties.items():
        if key in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes"):
            params[key] = value
        elif key == "DeletionProtectionEnabled":
            params[key] = bool(value)
        elif key == "SSESpecification":
            sse = {"Enabled": bool(value["SSEEnabled"])}
            sse.update({k: v for k, v in value.items() if k in ("SSEType", "KMSMasterKeyId")})
            params[key] = sse
        elif key == "StreamSpecification":
            params[key] = {"StreamEnabled": True, "StreamViewType": value["StreamViewType"]}
        elif key == "PointInTimeRecoverySpecification":
            spec = {"PointInTimeRecoveryEnabled": bool(value["PointInTimeRecoveryEnabled"])}
            after.append(("update_continuous_backups", {"PointInTimeRecoverySpecification": spec}))
        elif key == "TimeToLiveSpecification":
            spec = {"AttributeName": value["AttributeName"], "Enabled": bool(value["Enabled"])}
            after.append(("update_time_to_live", {"TimeToLiveSpecification": spec}))
        else:
            raise NotImplementedError(f"{name}: table property {key} has no local translation")
    dynamodb.create_table(**params)
    dynamodb.get_waiter("table_exists").wait(TableName=name)
    for method, kwargs in after:
        getattr(dynamodb, method)(TableName=name, **kwargs)


def create_data_key(kms: Any, resolver: Resolver) -> str:
    """The template's ``DataKey`` (policy, rotation) and its alias; returns the new key's id."""
    resources = resolver.template["Resources"]
    properties = resolver.resolve(resources[DATA_KEY]["Properties"])
    params: dict[str, Any] = {}
    rotation = False
    for key, value in properties.items():
        if key == "Description":
            params[key] = value
        elif key == "KeyPolicy":
            params["Policy"] = json.dumps(value)
        elif key == "EnableKeyRotation":
            rotation = bool(value)
        else:
            raise NotImplementedError(f"{DATA_KEY} property {key} has no local translation")
    key_id = kms.create_key(**params)["KeyMetadata"]["KeyId"]
    if rotation:
        kms.enable_key_rotation(KeyId=key_id)
    if DATA_KEY_ALIAS in resources:
        with_key = replace(resolver, names={**resolver.names, DATA_KEY: key_id})
        alias = with_key.resolve(resources[DATA_KEY_ALIAS]["Properties"])
        try:
            kms.create_alias(AliasName=alias["AliasName"], TargetKeyId=alias["TargetKeyId"])
        except kms.exceptions.AlreadyExistsException:
            # A second local stack in one process (moto's state is per process): the alias
            # moves to this stack's key, as CloudFormation would on replacing the key.
            kms.update_alias(AliasName=alias["AliasName"], TargetKeyId=alias["TargetKeyId"])
    return key_id


def bucket_policy(resolver: Resolver, bucket: str) -> dict[str, Any]:
    """The template's bucket policy for ``bucket``, resolved (exactly one is expected)."""
    policies = [
        resolver.resolve(policy["Properties"])
        for policy in resources_of_type(resolver.template, "AWS::S3::BucketPolicy").values()
    ]
    (document,) = (p["PolicyDocument"] for p in policies if p["Bucket"] == bucket)
    return document


def with_data_key(resolver: Resolver, kms: Any) -> Resolver:
    """``resolver`` with ``Ref DataKey`` bound: the key it names, or one created now through ``kms``."""
    if DATA_KEY in resolver.names or DATA_KEY not in resolver.template["Resources"]:
        return resolver
    return replace(resolver, names={**resolver.names, DATA_KEY: create_data_key(kms, resolver)})


def client_beside(client: Any, service: str) -> Any:
    """A ``service`` client on ``client``'s region and endpoint (a moto server, or in-process moto)."""
    import boto3

    endpoint = client.meta.endpoint_url
    custom = None if endpoint.endswith(".amazonaws.com") else endpoint
    return boto3.client(service, region_name=client.meta.region_name, endpoint_url=custom)


def create_storage(
    resolver: Resolver, s3: Any, dynamodb: Any, names: Names, kms: Any | None = None
) -> dict[str, Any]:
    """The KMS key, the access-log bucket, the model bucket and the tables, from the template.

    The key is created (through ``kms``, else beside ``dynamodb``) unless ``resolver`` already
    names one (see ``with_data_key``). The
    access-log bucket gets its policy (S3 checks that it lets the logging service write
    before it enables logging into it). Returns the model bucket's policy, resolved but not
    attached: moto evaluates a statement whose ``Condition`` it cannot check as a match, so
    ``DenyInsecureTransport`` would deny every request, HTTPS or not (AWS applies it only to
    plain-HTTP requests). Nothing reads the log bucket, so its copy of that statement is harmless.
    """
    resolver = with_data_key(resolver, kms or client_beside(dynamodb, "kms"))
    resources = resolver.template["Resources"]
    if names.access_log_bucket:
        properties = resolver.resolve(resources[ACCESS_LOG_BUCKET]["Properties"])
        create_bucket(s3, names.access_log_bucket, properties, resolver.region)
        policy = bucket_policy(resolver, names.access_log_bucket)
        s3.put_bucket_policy(Bucket=names.access_log_bucket, Policy=json.dumps(policy))
    create_bucket(s3, names.bucket, resolver.resolve(resources[BUCKET]["Properties"]), resolver.region)
    create_table(dynamodb, names.table, resolver.resolve(resources[TABLE]["Properties"]))
    if names.idempotency_table:
        properties = resolver.resolve(resources[IDEMPOTENCY_TABLE]["Properties"])
        create_table(dynamodb, names.idempotency_table, properties)
    return bucket_policy(resolver, names.bucket)
