"""``credit policy``: the decision policy in force, the impact of a change, and publishing it.

A change of policy is a change of decisions, so it is never published blind: ``diff`` and ``set``
first evaluate the current and the proposed policy on the reference data with the out-of-fold
predictions the economics report was computed from (``reports/economics_predictions.csv``), and
show how the approve/review/decline mix, the defaulters not booked and the savings move; ``set``
publishes only once that is confirmed (or with ``--yes``), and only if the policy was not changed
by someone else meanwhile (a conditional write: see ``credit_api.policy_store``).

A proposal file is JSON::

    {"policy": {... every field of credit_api.policy.Policy ...},
     "score_scale": {...}  (optional: the current one),
     "reason": "why"       (required by set)}

The bucket is ``--bucket`` or ``MODEL_BUCKET``; ``AWS_ENDPOINT_URL`` points at a local moto
server. Without a bucket, ``show`` and ``diff`` use the bundled model's manifest policy.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from credit_api import policy_store
from credit_api.aws import error_code
from credit_api.manifest import MANIFEST_FILE, Manifest
from credit_api.model_store import read_pointer as read_champion_pointer
from credit_api.policy import Policy, PolicyDocument, ScoreScale, policy_version
from credit_api.policy_store import Pointer, PolicyConflict, PolicyLoadError, ServedPolicy
from credit_api.settings import BUNDLED_MODEL_DIR
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training import economics
from training.data import ROOT

REPORTS_DIR = ROOT / "reports"

app = typer.Typer(
    name="policy",
    help="The decision policy: show the one in force, preview a change on the reference data, publish it.",
    no_args_is_help=True,
)

Bucket = Annotated[
    str | None, typer.Option("--bucket", envvar="MODEL_BUCKET", help="model bucket (else the bundled model)")
]
Endpoint = Annotated[
    str | None, typer.Option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3 endpoint, e.g. moto's")
]
Reports = Annotated[
    Path, typer.Option("--reports", help="where economics_predictions.csv is", file_okay=False)
]
ModelDir = Annotated[Path, typer.Option("--model-dir", help="the bundled model, used without a champion")]
ProposalFile = Annotated[Path, typer.Argument(help="the proposed policy (JSON)", dir_okay=False)]


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
            if error_code(exc) not in policy_store.ABSENT:
                raise fail(f"cannot read the champion in s3://{bucket}: {error_code(exc)}") from exc
        else:
            prefix = read_champion_pointer(s3, bucket)["key"].rstrip("/")
            raw = s3.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST_FILE}")["Body"].read()
            return Manifest.model_validate_json(raw)
    return Manifest.model_validate_json((model_dir / MANIFEST_FILE).read_bytes())


def _in_force(s3: Any, bucket: str | None, model_dir: Path) -> tuple[ServedPolicy, Pointer | None, Manifest]:
    """(the policy in force, the pointer to switch from, the served model's manifest)."""
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


@app.command()
def show(
    bucket: Bucket = None,
    endpoint_url: Endpoint = None,
    model_dir: ModelDir = BUNDLED_MODEL_DIR,
    history: Annotated[
        bool, typer.Option("--history", help="also every policy published, newest first")
    ] = False,
) -> None:
    """The policy in force: its version, where it comes from, and its numbers."""
    s3 = _s3(endpoint_url) if bucket else None
    served, _, _ = _in_force(s3, bucket, model_dir)
    typer.echo(json.dumps(_describe(served), indent=2))
    if history and bucket:
        for entry in policy_store.history(s3, bucket):
            typer.echo(
                f"{entry['modified']:%Y-%m-%d %H:%M:%S}  {entry['policy_version']}  by {entry.get('by')}"
                f"  (was {entry.get('previous')}): {entry.get('reason')}"
            )


@app.command()
def diff(
    proposal_file: ProposalFile,
    bucket: Bucket = None,
    endpoint_url: Endpoint = None,
    reports: Reports = REPORTS_DIR,
    model_dir: ModelDir = BUNDLED_MODEL_DIR,
) -> None:
    """How a proposed policy would change the decisions, against the one in force."""
    current, _, manifest = _in_force(_s3(endpoint_url) if bucket else None, bucket, model_dir)
    _, proposed = read_proposal(proposal_file, current)
    _show_changes(current, proposed)
    mismatch = sample_mismatch(proposed, manifest)
    if mismatch:
        typer.secho(f"warning: {mismatch}; set would refuse it", err=True, fg=typer.colors.YELLOW)
    _echo_impact(impact_table(current, proposed, reports))


@app.command("set")
def set_policy(
    proposal_file: ProposalFile,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="publish without asking")] = False,
    by: Annotated[str | None, typer.Option("--by", help="who publishes it (default: $USER)")] = None,
    bucket: Bucket = None,
    endpoint_url: Endpoint = None,
    reports: Reports = REPORTS_DIR,
    model_dir: ModelDir = BUNDLED_MODEL_DIR,
) -> None:
    """Show the impact of a proposed policy, then publish it once confirmed."""
    if not bucket:
        raise fail("set publishes to the model bucket: give --bucket or set MODEL_BUCKET")
    s3 = _s3(endpoint_url)
    current, pointer, manifest = _in_force(s3, bucket, model_dir)
    proposal, proposed = read_proposal(proposal_file, current)
    if not proposal.reason:
        raise fail(f'{proposal_file} needs a "reason": the history records why each policy changed')
    mismatch = sample_mismatch(proposed, manifest)
    if mismatch:
        raise fail(f"not published: {mismatch}.")
    _show_changes(current, proposed)
    if proposed.version == current.version and pointer is not None:
        typer.echo(f"{proposed.version} is already in force; nothing published.")
        return
    _echo_impact(impact_table(current, proposed, reports))
    if not yes and not typer.confirm(f"Publish {proposed.version} to s3://{bucket}?", default=False):
        raise fail("not published.", code=1)
    document = PolicyDocument.create(
        proposed.policy,
        proposed.score_scale,
        by=by or os.environ.get("USER") or "credit-cli",
        reason=proposal.reason,
        published_at=datetime.now(UTC),
    )
    try:
        written = policy_store.publish(s3, bucket, document, pointer)
    except PolicyConflict as exc:
        raise fail(str(exc), code=1) from exc
    typer.echo(
        f"published {written['policy_version']} (was {written['previous'] or current.version});"
        " the function serves it after its next model refresh."
    )
