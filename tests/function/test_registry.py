"""The registry: immutable verified versions, conditional switches, history, rollback, crashes mid-way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from credit_api import registry
from credit_api.manifest import MANIFEST_FILE, MODEL_FILE
from credit_api.model_store import POINTER_KEY, load_from_s3, read_pointer

from tests.function.conftest import BUNDLED

BUCKET = "registry-test"


@pytest.fixture(scope="module")
def client() -> Any:
    """One S3 client for the module (making one costs ~0.5 s); moto mocks it in each test's ``aws``
    (moto adds its handler to botocore's built-in ones on import, so it is imported first)."""
    import boto3
    import moto  # noqa: F401

    return boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def s3(aws: None, client: Any) -> Any:
    """A versioned bucket, as the template's ModelBucket is (the history is the pointer's versions)."""
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


def model_dir(tmp_path: Path, version: str, **metrics: float) -> Path:
    """The bundled model under another version name (and metrics): same ONNX bytes, another manifest."""
    target = tmp_path / version
    shutil.copytree(BUNDLED, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["model_version"] = version
    manifest["metrics"] = metrics or {"roc_auc": 0.75}
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def keys(s3: Any, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def champion(s3: Any) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=POINTER_KEY)["Body"].read())


def publish_chain(s3: Any, tmp_path: Path, *versions: str) -> list[dict[str, Any]]:
    return [
        registry.publish(s3, BUCKET, model_dir(tmp_path, v), by="test", reason=f"ship {v}") for v in versions
    ]


def test_a_version_is_stored_once_and_never_replaced(s3: Any, tmp_path: Path) -> None:
    directory = model_dir(tmp_path, "v1")
    ref, model = registry.store_dir(s3, BUCKET, directory)
    assert ref["key"] == f"models/v1-{model.sha256[:12]}" and ref["sha256"] == model.sha256
    assert registry.store_dir(s3, BUCKET, directory)[0] == ref  # a retried run: same bytes, fine
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, "metrics": {"roc_auc": 0.99}}))
    with pytest.raises(registry.VersionConflict, match="immutable"):
        registry.store_dir(s3, BUCKET, directory)
    stored = s3.get_object(Bucket=BUCKET, Key=f"{ref['key']}/{MANIFEST_FILE}")["Body"].read()
    assert json.loads(stored)["metrics"] == {"roc_auc": 0.75}


def test_a_broken_model_is_refused_before_anything_is_written(s3: Any, tmp_path: Path) -> None:
    directory = model_dir(tmp_path, "broken")
    data = (directory / MODEL_FILE).read_bytes()
    (directory / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(registry.Unverified, match="before any write"):
        registry.publish(s3, BUCKET, directory, by="test", reason="r")
    assert keys(s3) == []


def test_a_promotion_carries_its_change_record_and_the_function_still_reads_it(
    s3: Any, tmp_path: Path
) -> None:
    first, second = publish_chain(s3, tmp_path, "v1", "v2")
    assert first["change"]["previous_version"] is None and first["lineage"] == []
    pointer = champion(s3)
    assert pointer == second
    assert pointer["change"] == {
        "action": "promote",
        "by": "test",
        "reason": "ship v2",
        "previous_version": "v1",
        "metrics": {"roc_auc": 0.75},
        "comparison": None,
        "report_key": None,
    }
    assert pointer["lineage"] == [registry.ref_of(first)]
    served = load_from_s3(s3, BUCKET, read_pointer(s3, BUCKET))  # the function's own read path
    assert served.version == "v2"


def test_the_switch_is_conditional_on_the_champion_the_caller_read(s3: Any, tmp_path: Path) -> None:
    publish_chain(s3, tmp_path, "v1")
    seen = registry.read_champion(s3, BUCKET)
    ref2, _ = registry.store_dir(s3, BUCKET, model_dir(tmp_path, "v2"))
    ref3, _ = registry.store_dir(s3, BUCKET, model_dir(tmp_path, "v3"))
    registry.promote(s3, BUCKET, ref2, by="first", reason="r", current=seen)
    with pytest.raises(registry.ChampionChanged, match="no longer 'v1'"):
        registry.promote(s3, BUCKET, ref3, by="second", reason="r", current=seen)
    assert champion(s3)["model_version"] == "v2"
    assert [e["by"] for e in registry.history(s3, BUCKET)] == ["first", "test"]


def test_two_first_champions_cannot_both_win(s3: Any, tmp_path: Path) -> None:
    empty = registry.read_champion(s3, BUCKET)
    assert empty == registry.Champion(None, None)
    ref1, _ = registry.store_dir(s3, BUCKET, model_dir(tmp_path, "v1"))
    ref2, _ = registry.store_dir(s3, BUCKET, model_dir(tmp_path, "v2"))
    registry.promote(s3, BUCKET, ref1, by="a", reason="r", current=empty)
    with pytest.raises(registry.ChampionChanged):
        registry.promote(s3, BUCKET, ref2, by="b", reason="r", current=empty)
    assert champion(s3)["model_version"] == "v1"


def test_history_lists_every_change_newest_first(s3: Any, tmp_path: Path) -> None:
    assert registry.history(s3, BUCKET) == []
    publish_chain(s3, tmp_path, "v1", "v2")
    registry.rollback(s3, BUCKET, by="oncall", reason="v2 declines too many")
    entries = registry.history(s3, BUCKET)
    assert [(e["action"], e["version"], e["previous"]) for e in entries] == [
        ("rollback", "v1", "v2"),
        ("promote", "v2", "v1"),
        ("promote", "v1", None),
    ]
    assert entries[0]["by"] == "oncall" and entries[0]["reason"] == "v2 declines too many"
    assert entries[0]["metrics"] == {"roc_auc": 0.75}
    assert entries[0]["when"] >= entries[1]["when"] >= entries[2]["when"]
    json.dumps(entries)  # the ops function returns it as is


def test_a_pointer_written_without_a_record_is_listed_as_unrecorded(s3: Any, tmp_path: Path) -> None:
    (pointer,) = publish_chain(s3, tmp_path, "v1")
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps(registry.ref_of(pointer)).encode())
    s3.delete_object(Bucket=BUCKET, Key=POINTER_KEY)
    assert [e["action"] for e in registry.history(s3, BUCKET)] == ["deleted", "unrecorded", "promote"]


def test_rollback_walks_back_the_promotions_and_then_stops(s3: Any, tmp_path: Path) -> None:
    publish_chain(s3, tmp_path, "v1", "v2", "v3")
    assert registry.rollback(s3, BUCKET, by="t", reason="r")["model_version"] == "v2"
    assert registry.rollback(s3, BUCKET, by="t", reason="r")["model_version"] == "v1"
    with pytest.raises(registry.RegistryError, match="replaced no earlier champion"):
        registry.rollback(s3, BUCKET, by="t", reason="r")
    assert champion(s3)["model_version"] == "v1"


def test_rollback_to_a_named_version_and_back(s3: Any, tmp_path: Path) -> None:
    first, _, third = publish_chain(s3, tmp_path, "v1", "v2", "v3")
    pointer = registry.rollback(s3, BUCKET, "v1", by="t", reason="back to the first")
    assert pointer["model_version"] == "v1" and pointer["lineage"] == []
    again = registry.rollback(s3, BUCKET, third["key"].removeprefix("models/"), by="t", reason="forward")
    assert again["model_version"] == "v3" and again["lineage"] == [registry.ref_of(first)]
    assert registry.rollback(s3, BUCKET, "v3", by="t", reason="no-op") == again  # nothing written
    assert len(registry.history(s3, BUCKET)) == 5
    with pytest.raises(registry.NotFound, match="no stored model version is named 'v9'"):
        registry.rollback(s3, BUCKET, "v9", by="t", reason="r")
    with pytest.raises(registry.RegistryError, match="needs a reason"):
        registry.rollback(s3, BUCKET, by="t", reason=" ")


@pytest.mark.parametrize("file", [MODEL_FILE, MANIFEST_FILE])
def test_a_tampered_version_is_refused_on_rollback(s3: Any, tmp_path: Path, file: str) -> None:
    first, second = publish_chain(s3, tmp_path, "v1", "v2")
    body = s3.get_object(Bucket=BUCKET, Key=f"{first['key']}/{file}")["Body"].read()
    if file == MODEL_FILE:
        tampered = body[:-1] + bytes([body[-1] ^ 1])
    else:  # a valid manifest for the same bytes, with its policy or metrics quietly changed
        tampered = json.dumps({**json.loads(body), "metrics": {"roc_auc": 0.99}}).encode()
    s3.put_object(Bucket=BUCKET, Key=f"{first['key']}/{file}", Body=tampered)
    with pytest.raises(registry.Unverified, match="fails verification"):
        registry.rollback(s3, BUCKET, by="t", reason="r")
    assert champion(s3) == second


class Crash(Exception):
    """Injected: the process died here."""


class CrashingS3:
    """boto3's S3 client whose ``crash_at``-th ``put_object`` dies before or after it is sent."""

    def __init__(self, s3: Any, crash_at: int | None = None, when: str = "before") -> None:
        self.s3, self.crash_at, self.when, self.puts = s3, crash_at, when, 0

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        if self.puts == self.crash_at and self.when == "before":
            raise Crash(kwargs["Key"])
        response = self.s3.put_object(**kwargs)
        if self.puts == self.crash_at:
            raise Crash(kwargs["Key"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def consistent(s3: Any) -> dict[str, Any]:
    """The champion verifies and is the newest history entry; returns it."""
    pointer = champion(s3)
    registry.verify(s3, BUCKET, registry.ref_of(pointer))
    newest = registry.history(s3, BUCKET)[0]
    assert (newest["version"], newest["key"], newest["sha256"]) == (
        pointer["model_version"],
        pointer["key"],
        pointer["sha256"],
    )
    return pointer


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_at_any_write_of_a_promotion_leaves_the_registry_consistent(
    s3: Any, tmp_path: Path, crash_at: int, when: str
) -> None:
    """A publish writes model.onnx, manifest.json, then the pointer: three writes."""
    publish_chain(s3, tmp_path, "v1")
    crashing = CrashingS3(s3, crash_at, when)
    with pytest.raises(Crash):
        registry.publish(crashing, BUCKET, model_dir(tmp_path, "v2"), by="t", reason="r")
    switched = crash_at == 3 and when == "after"
    assert consistent(s3)["model_version"] == ("v2" if switched else "v1")
    assert len(registry.history(s3, BUCKET)) == (2 if switched else 1)
    registry.publish(s3, BUCKET, tmp_path / "v2", by="t", reason="retried")  # completes, or a no-op
    assert consistent(s3)["model_version"] == "v2"
    assert len(registry.history(s3, BUCKET)) == 2


def test_a_promotion_makes_exactly_three_writes(s3: Any, tmp_path: Path) -> None:
    counting = CrashingS3(s3)
    registry.publish(counting, BUCKET, model_dir(tmp_path, "v1"), by="t", reason="r")
    assert counting.puts == 3


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_the_write_of_a_rollback_leaves_the_registry_consistent(
    s3: Any, tmp_path: Path, when: str
) -> None:
    publish_chain(s3, tmp_path, "v1", "v2")
    crashing = CrashingS3(s3, 1, when)
    with pytest.raises(Crash):
        registry.rollback(crashing, BUCKET, by="t", reason="r")
    assert crashing.puts == 1  # a rollback's only write is the pointer
    expected = "v1" if when == "after" else "v2"
    assert consistent(s3)["model_version"] == expected
    assert registry.history(s3, BUCKET)[0]["action"] == ("rollback" if when == "after" else "promote")


def test_an_invalid_pointer_can_be_replaced_but_not_rolled_back(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=b"[]")
    seen = registry.read_champion(s3, BUCKET)
    assert seen.pointer is None and seen.etag and "not an object" in (seen.invalid or "")
    with pytest.raises(registry.NotFound, match="not an object"):
        registry.rollback(s3, BUCKET, by="t", reason="r")
    assert publish_chain(s3, tmp_path, "v1")[0]["change"]["previous_version"] is None
    assert [e["action"] for e in registry.history(s3, BUCKET)] == ["promote", "unrecorded"]


def test_list_versions_reads_each_manifest(s3: Any, tmp_path: Path) -> None:
    first, second = publish_chain(s3, tmp_path, "v1", "v2")
    listed = registry.list_versions(s3, BUCKET)
    assert listed == [registry.ref_of(first), registry.ref_of(second)]
