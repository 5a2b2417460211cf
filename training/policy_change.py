"""The work behind ``credit policy`` (:mod:`training.cli_policy`): the policy in force, a proposal
read and validated, its impact on the reference data. Kept apart from the command line so that
``credit --help`` imports none of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from credit_api import aws, policy_store
from credit_api.aws import error_code
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.model_store import read_pointer as read_champion_pointer
from credit_api.policy import Policy, ScoreScale, policy_version
from credit_api.policy_store import Pointer, PolicyLoadError, ServedPolicy
from credit_api.settings import BUNDLED_MODEL_DIR
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training import economics


class Proposal(BaseModel):
    """What a proposal file holds: the numbers, and why they change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Policy
    score_scale: ScoreScale | None = None
    reason: str | None = Field(None, min_length=1, max_length=2000)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _s3(endpoint: str | None) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint)


def _champion_manifest(s3: Any, bucket: str | None, model_dir: Path) -> Manifest:
    """The served model's manifest: the S3 champion's, else the bundled model's."""
    if bucket:
        try:
            s3.head_object(Bucket=bucket, Key="models/champion.json")
        except Exception as exc:
            if error_code(exc) not in aws.S3_MISSING_CODES:
                raise fail(f"cannot read the champion in s3://{bucket}: {error_code(exc)}") from exc
        else:
            prefix = read_champion_pointer(s3, bucket)["key"].rstrip("/")
            raw = s3.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST_FILE}")["Body"].read()
            return Manifest.model_validate_json(raw)
    return Manifest.model_validate_json((model_dir / MANIFEST_FILE).read_bytes())


def _in_force(
    s3: Any, bucket: str | None, model_dir: Path | None
) -> tuple[ServedPolicy, Pointer | None, Manifest]:
    """(the policy in force, the pointer to switch from, the served model's manifest)."""
    model_dir = model_dir or BUNDLED_MODEL_DIR
    manifest = _champion_manifest(s3, bucket, model_dir)
    try:
        return (*policy_store.current(s3, bucket, manifest), manifest)
    except PolicyLoadError as exc:
        raise fail(f"the published policy cannot be read: {exc}") from exc


def sample_mismatch(proposed: ServedPolicy, manifest: Manifest) -> str | None:
    """Why the proposal's sample default rate is wrong for the served model, if it is.

    The prior-shift correction moves the model's probabilities from the default rate of the
    sample the model was trained on; that rate is a fact of the model, not a policy choice.
    """
    trained = manifest.policy.sample_default_rate
    if proposed.policy.sample_default_rate == trained:
        return None
    return (
        f"sample_default_rate {proposed.policy.sample_default_rate:g} is not the default rate of the"
        f" sample {manifest.model_version} was trained on ({trained:g}): the population correction"
        " would be wrong"
    )


def read_proposal(path: Path, current: ServedPolicy) -> tuple[Proposal, ServedPolicy]:
    """The proposal in ``path``, validated, and the policy it would put in force."""
    try:
        proposal = Proposal.model_validate_json(path.read_bytes(), strict=True)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise fail(f"{path} is not a valid policy proposal:\n{problems}") from exc
    scale = proposal.score_scale or current.score_scale
    proposed = ServedPolicy(proposal.policy, scale, policy_version(proposal.policy, scale), str(path))
    return proposal, proposed


def _format(kind: str, value: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if kind == "rate":
        return f"{value * 100:{sign}.1f}" + (" pp" if signed else "%")
    return f"{value:{sign},.0f}"


def impact_table(current: ServedPolicy, proposed: ServedPolicy, reports: Path) -> list[dict[str, Any]]:
    """The impact rows, current against proposed, on the stored out-of-fold predictions."""
    try:
        probabilities, frame = economics.read_predictions(reports)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    return economics.impact(probabilities, frame, current.policy, proposed.policy)


def _show_changes(current: ServedPolicy, proposed: ServedPolicy) -> None:
    before = {**current.policy.model_dump(), **current.score_scale.model_dump()}
    after = {**proposed.policy.model_dump(), **proposed.score_scale.model_dump()}
    changed = [name for name in before if before[name] != after[name]]
    typer.echo(f"current  {current.version}  ({current.source})")
    typer.echo(f"proposed {proposed.version}  ({proposed.source})")
    for name in changed:
        typer.echo(f"  {name}: {before[name]} -> {after[name]}")
    if not changed:
        typer.echo("  no field changes")


def _echo_impact(rows: list[dict[str, Any]]) -> None:
    width = max(len(row["label"]) for row in rows)
    typer.echo("")
    typer.echo(
        "Impact on the reference data (out-of-fold predictions; money in DM 1973-75, reviews not booked)"
    )
    typer.echo(f"{'measure':{width}}  {'current':>12}  {'proposed':>12}  {'change':>12}")
    for row in rows:
        kind = row["kind"]
        typer.echo(
            f"{row['label']:{width}}  {_format(kind, row['current']):>12}"
            f"  {_format(kind, row['proposed']):>12}  {_format(kind, row['change'], signed=True):>12}"
        )


def _describe(policy: ServedPolicy) -> dict[str, Any]:
    return {
        "policy_version": policy.version,
        "source": policy.source,
        "policy": policy.policy.model_dump(),
        "score_scale": policy.score_scale.model_dump(),
    }
