"""``credit policy``: show, diff and set, against the bundled model and a moto bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.model_store import publish as publish_model
from credit_api.policy import PolicyDocument, policy_version
from credit_api.policy_store import history, publish, read_pointer
from credit_api.settings import BUNDLED_MODEL_DIR
from typer.testing import CliRunner

from training import cli_policy, economics, policy_change

BUCKET = "policy-cli-test"
MANIFEST = Manifest.model_validate_json((BUNDLED_MODEL_DIR / MANIFEST_FILE).read_bytes())
CURRENT = policy_version(MANIFEST.policy, MANIFEST.score_scale)
runner = CliRunner()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A versioned moto bucket holding the bundled model as champion; the CLI reaches it by env."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        publish_model(client, BUCKET, BUNDLED_MODEL_DIR)
        monkeypatch.setenv("MODEL_BUCKET", BUCKET)
        yield client


def proposal(tmp_path: Path, reason: str | None = "wider band", **changes: Any) -> Path:
    body: dict[str, Any] = {"policy": {**MANIFEST.policy.model_dump(), **changes}}
    if reason is not None:
        body["reason"] = reason
    path = tmp_path / "proposal.json"
    path.write_text(json.dumps(body))
    return path


def test_show_without_a_bucket_is_the_bundled_models_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    result = runner.invoke(cli_policy.app, ["show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["policy_version"] == CURRENT
    assert shown["source"] == f"manifest:{MANIFEST.model_version}"
    assert shown["policy"] == MANIFEST.policy.model_dump()


def test_diff_shows_the_impact_table_current_against_proposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    result = runner.invoke(cli_policy.app, ["diff", str(proposal(tmp_path, review_band=0.4))])
    assert result.exit_code == 0, result.output
    assert f"review_band: {MANIFEST.policy.review_band} -> 0.4" in result.output
    probabilities, frame = economics.read_predictions(cli_policy.REPORTS_DIR)
    proposed = MANIFEST.policy.model_copy(update={"review_band": 0.4})
    rows = economics.impact(probabilities, frame, MANIFEST.policy, proposed)
    table = result.output.splitlines()[-len(rows) :]
    for row, line in zip(rows, table, strict=True):
        assert line.startswith(row["label"] + " ")
        shown = " ".join(line[len(row["label"]) :].split())
        assert policy_change._format(row["kind"], row["current"]) in shown
        assert policy_change._format(row["kind"], row["proposed"]) in shown
        assert policy_change._format(row["kind"], row["change"], signed=True) in shown


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"policy": {"review_band": 0.2}}, "policy.annual_margin: Field required"),
        ({"policy": {**MANIFEST.policy.model_dump(), "annual_margin": 1.5}}, "policy.annual_margin"),
        ({"policy": MANIFEST.policy.model_dump(), "cutoff": 0.3}, "cutoff: Extra inputs"),
    ],
)
def test_a_bad_proposal_is_refused_with_the_field_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], message: str
) -> None:
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    result = runner.invoke(cli_policy.app, ["diff", str(path)])
    assert result.exit_code == 2
    assert "not a valid policy proposal" in result.output and message in result.output


def test_set_asks_first_and_publishes_only_when_confirmed(s3: Any, tmp_path: Path) -> None:
    path = proposal(tmp_path, review_band=0.3)
    declined = runner.invoke(cli_policy.app, ["set", str(path)], input="n\n")
    assert declined.exit_code == 1 and "not published" in declined.output
    assert "Approval rate" in declined.output  # the impact was shown before the question
    assert read_pointer(s3, BUCKET) is None

    accepted = runner.invoke(cli_policy.app, ["set", str(path), "--by", "analyst"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    version = policy_version(MANIFEST.policy.model_copy(update={"review_band": 0.3}), MANIFEST.score_scale)
    pointer = read_pointer(s3, BUCKET)
    assert pointer is not None and pointer.data["policy_version"] == version
    assert pointer.data["by"] == "analyst" and pointer.data["reason"] == "wider band"

    shown = runner.invoke(cli_policy.app, ["show", "--history"])
    assert shown.exit_code == 0, shown.output
    assert f'"policy_version": "{version}"' in shown.output and "by analyst" in shown.output

    again = runner.invoke(cli_policy.app, ["set", str(path), "--yes"])
    assert again.exit_code == 0 and "already in force" in again.output
    assert len(history(s3, BUCKET)) == 1


def test_set_yes_publishes_without_asking_and_needs_a_reason(s3: Any, tmp_path: Path) -> None:
    unexplained = runner.invoke(cli_policy.app, ["set", str(proposal(tmp_path, reason=None)), "--yes"])
    assert unexplained.exit_code == 2 and 'needs a "reason"' in unexplained.output
    result = runner.invoke(cli_policy.app, ["set", str(proposal(tmp_path, review_band=0.1)), "--yes"])
    assert result.exit_code == 0, result.output
    assert read_pointer(s3, BUCKET) is not None


def test_set_refuses_when_someone_else_published_while_it_asked(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other setter publishes between this one's reading and its confirmation: a conflict."""
    rival = PolicyDocument.create(
        MANIFEST.policy.model_copy(update={"review_band": 0.05}),
        MANIFEST.score_scale,
        by="rival",
        reason="narrower",
        published_at=MANIFEST.created_at,
    )

    def confirm(*_: Any, **__: Any) -> bool:
        publish(s3, BUCKET, rival, read_pointer(s3, BUCKET))
        return True

    monkeypatch.setattr(cli_policy.typer, "confirm", confirm)
    result = runner.invoke(cli_policy.app, ["set", str(proposal(tmp_path, review_band=0.3))])
    assert result.exit_code == 1
    assert "changed by someone else" in result.output
    assert read_pointer(s3, BUCKET).data["policy_version"] == rival.policy_version  # type: ignore[union-attr]


def test_a_sample_rate_that_is_not_the_models_is_refused(s3: Any, tmp_path: Path) -> None:
    path = proposal(tmp_path, sample_default_rate=0.2)
    previewed = runner.invoke(cli_policy.app, ["diff", str(path)])
    assert previewed.exit_code == 0 and "set would refuse it" in previewed.output
    refused = runner.invoke(cli_policy.app, ["set", str(path), "--yes"])
    assert refused.exit_code == 2 and "not the default rate of the sample" in refused.output
    assert read_pointer(s3, BUCKET) is None


def test_set_without_a_bucket_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    result = runner.invoke(cli_policy.app, ["set", str(proposal(tmp_path)), "--yes"])
    assert result.exit_code == 2 and "--bucket" in result.output
