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
from typing import Annotated

import typer

REPORTS_DIR = Path(__file__).resolve().parents[1] / "reports"

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
ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="the model used without a champion (default: the bundled one)"),
]
ProposalFile = Annotated[Path, typer.Argument(help="the proposed policy (JSON)", dir_okay=False)]


@app.command()
def show(
    bucket: Bucket = None,
    endpoint_url: Endpoint = None,
    model_dir: ModelDir = None,
    history: Annotated[
        bool, typer.Option("--history", help="also every policy published, newest first")
    ] = False,
) -> None:
    """The policy in force: its version, where it comes from, and its numbers."""
    from credit_api import policy_store

    from training import policy_change as change

    s3 = change._s3(endpoint_url) if bucket else None
    served, _, _ = change._in_force(s3, bucket, model_dir)
    typer.echo(json.dumps(change._describe(served), indent=2))
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
    model_dir: ModelDir = None,
) -> None:
    """How a proposed policy would change the decisions, against the one in force."""
    from training import policy_change as change

    current, _, manifest = change._in_force(change._s3(endpoint_url) if bucket else None, bucket, model_dir)
    _, proposed = change.read_proposal(proposal_file, current)
    change._show_changes(current, proposed)
    mismatch = change.sample_mismatch(proposed, manifest)
    if mismatch:
        typer.secho(f"warning: {mismatch}; set would refuse it", err=True, fg=typer.colors.YELLOW)
    change._echo_impact(change.impact_table(current, proposed, reports))


@app.command("set")
def set_policy(
    proposal_file: ProposalFile,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="publish without asking")] = False,
    by: Annotated[str | None, typer.Option("--by", help="who publishes it (default: $USER)")] = None,
    bucket: Bucket = None,
    endpoint_url: Endpoint = None,
    reports: Reports = REPORTS_DIR,
    model_dir: ModelDir = None,
) -> None:
    """Show the impact of a proposed policy, then publish it once confirmed."""
    from credit_api import policy_store
    from credit_api.policy import PolicyDocument
    from credit_api.policy_store import PolicyConflict

    from training import policy_change as change

    if not bucket:
        raise change.fail("set publishes to the model bucket: give --bucket or set MODEL_BUCKET")
    s3 = change._s3(endpoint_url)
    current, pointer, manifest = change._in_force(s3, bucket, model_dir)
    proposal, proposed = change.read_proposal(proposal_file, current)
    if not proposal.reason:
        raise change.fail(f'{proposal_file} needs a "reason": the history records why each policy changed')
    mismatch = change.sample_mismatch(proposed, manifest)
    if mismatch:
        raise change.fail(f"not published: {mismatch}.")
    change._show_changes(current, proposed)
    if proposed.version == current.version and pointer is not None:
        typer.echo(f"{proposed.version} is already in force; nothing published.")
        return
    change._echo_impact(change.impact_table(current, proposed, reports))
    if not yes and not typer.confirm(f"Publish {proposed.version} to s3://{bucket}?", default=False):
        raise change.fail("not published.", code=1)
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
        raise change.fail(str(exc), code=1) from exc
    typer.echo(
        f"published {written['policy_version']} (was {written['previous'] or current.version});"
        " the function serves it after its next model refresh."
    )
