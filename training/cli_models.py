"""``credit models``: the model registry from the command line (list, history, promote, rollback).

Each command works on the model bucket given by ``--bucket`` (or ``MODEL_BUCKET``); the S3
endpoint comes from ``AWS_ENDPOINT_URL`` (the local stack's moto server), credentials from
the usual AWS chain. All the work is :mod:`credit_api.registry`'s, so the CLI, the ops
function and the retrain switch the champion under the same rules: verified versions,
conditional writes, one history.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from credit_api import registry

app = typer.Typer(
    help="The model registry: stored versions, the champion's history, promotion and rollback.",
    no_args_is_help=True,
)

Bucket = Annotated[
    str,
    typer.Option("--bucket", envvar="MODEL_BUCKET", help="The model bucket (ModelBucketName output)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _s3() -> Any:
    """An S3 client (imported here, as is the registry in each command, so ``credit --help`` stays fast)."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _operator() -> str:
    """Who ran the command, for the history: ``user@host`` and the command."""
    return f"{getpass.getuser()}@{socket.gethostname()} (credit models)"


def _fail(exc: registry.RegistryError) -> typer.Exit:
    typer.secho(f"refused: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command("list")
def list_(bucket: Bucket, as_json: Json = False) -> None:
    """Every stored model version; the champion is marked with *."""
    from credit_api import registry

    s3 = _s3()
    champion = registry.read_champion(s3, bucket)
    versions = registry.list_versions(s3, bucket)
    if as_json:
        _echo_json({"champion": champion.pointer, "versions": versions})
        return
    for ref in versions:
        mark = "*" if champion.pointer and ref["key"] == champion.pointer["key"] else " "
        typer.echo(f"{mark} {ref['model_version']:<40} {ref['key']}")
    if not versions:
        typer.echo("no model versions stored")


@app.command()
def history(
    bucket: Bucket,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many changes.")] = 20,
    as_json: Json = False,
) -> None:
    """Every change of champion, newest first: when, what, from which version, by whom, why."""
    from credit_api import registry

    entries = registry.history(_s3(), bucket, limit=limit)
    if as_json:
        _echo_json(entries)
        return
    for entry in entries:
        typer.echo(
            f"{entry['when']}  {entry['action']:<9} {entry['version'] or '-'}"
            f"  (from {entry['previous'] or '-'})  by {entry['by'] or '-'}"
        )
        if entry["reason"]:
            typer.echo(f"    {entry['reason']}")
        if entry["report_key"]:
            typer.echo(f"    report: s3://{bucket}/{entry['report_key']}")
    if not entries:
        typer.echo("no champion has been published")


@app.command()
def promote(
    target: Annotated[str, typer.Argument(help="A model directory to publish, or a stored version.")],
    bucket: Bucket,
    reason: Annotated[str, typer.Option(help="Why (goes into the history).")] = "promoted by hand",
) -> None:
    """Make a model champion: a local directory is verified and stored first; a stored version is verified."""
    from credit_api import registry

    s3 = _s3()
    try:
        if Path(target).is_dir():
            ref, _ = registry.store_dir(s3, bucket, target)
        else:
            ref = registry.resolve(s3, bucket, target, registry.read_champion(s3, bucket))
        pointer = registry.promote(s3, bucket, ref, by=_operator(), reason=reason)
    except registry.RegistryError as exc:
        raise _fail(exc) from exc
    typer.echo(f"champion: {pointer['model_version']} ({pointer['key']})")


@app.command()
def rollback(
    bucket: Bucket,
    reason: Annotated[str, typer.Option(help="Why (goes into the history).")],
    to: Annotated[
        str | None, typer.Option("--to", help="A stored version (default: the previous champion).")
    ] = None,
) -> None:
    """Switch the champion back to the previous one (or to --to), after verifying it."""
    from credit_api import registry

    try:
        pointer = registry.rollback(_s3(), bucket, to, by=_operator(), reason=reason)
    except registry.RegistryError as exc:
        raise _fail(exc) from exc
    typer.echo(f"champion: {pointer['model_version']} ({pointer['key']})")
