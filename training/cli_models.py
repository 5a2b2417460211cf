"""``credit models``: the model registry from the command line (list, history, promote, rollback, shadow).

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


shadow_app = typer.Typer(
    help="The shadow challenger: scored on every request beside the champion, never answering.",
    no_args_is_help=True,
)
app.add_typer(shadow_app, name="shadow")

Reason = Annotated[str, typer.Option(help="Why (goes into the shadow's history).")]


@shadow_app.command("set")
def shadow_set(
    target: Annotated[str, typer.Argument(help="A stored version (its model version, directory or key).")],
    bucket: Bucket,
    reason: Reason = "challenger set to run in shadow",
) -> None:
    """Run a stored version in shadow, after verifying it (the function loads it on its next refresh)."""
    from credit_api import registry
    from credit_api import shadow as shadows

    s3 = _s3()
    try:
        ref = registry.resolve(s3, bucket, target, registry.read_champion(s3, bucket))
        document = shadows.set_shadow(s3, bucket, ref, by=_operator(), reason=reason)
    except registry.RegistryError as exc:
        raise _fail(exc) from exc
    typer.echo(f"shadow: {document['model_version']} ({document['key']})")


@shadow_app.command("clear")
def shadow_clear(bucket: Bucket, reason: Reason = "shadow stopped") -> None:
    """Stop the shadow (the function drops it on its next refresh)."""
    from credit_api import registry
    from credit_api import shadow as shadows

    try:
        document = shadows.clear(_s3(), bucket, by=_operator(), reason=reason)
    except registry.RegistryError as exc:
        raise _fail(exc) from exc
    typer.echo("shadow cleared" if document else "no shadow was set")


@shadow_app.command("show")
def shadow_show(
    bucket: Bucket,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many changes.")] = 20,
    as_json: Json = False,
) -> None:
    """The shadow now, and every change of shadow, newest first."""
    from credit_api import shadow as shadows

    s3 = _s3()
    current = shadows.read(s3, bucket)
    entries = shadows.history(s3, bucket)[:limit]
    if as_json:
        _echo_json({"shadow": current.pointer, "invalid": current.invalid, "history": entries})
        return
    if current.invalid:
        typer.secho(f"shadow pointer refused: {current.invalid}", fg=typer.colors.RED)
    elif current.pointer:
        typer.echo(f"shadow: {current.pointer['model_version']} ({current.pointer['key']})")
    else:
        typer.echo("no shadow is set")
    for entry in entries:
        typer.echo(
            f"{entry['when']}  {entry['action']:<7} {entry['version'] or '-'}  by {entry['by'] or '-'}"
        )
        if entry["reason"]:
            typer.echo(f"    {entry['reason']}")


def _decision_records(table: str | None, db: Path | None) -> list[dict[str, Any]]:
    if table:
        import boto3
        from credit_api.decision_reads import scan_decisions

        endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
        return scan_decisions(boto3.session.Session().client("dynamodb", endpoint_url=endpoint), table)
    if db is None:
        raise typer.BadParameter("give --table (DECISIONS_TABLE) or --db (DECISIONS_DB)")
    if not db.is_file():
        raise typer.BadParameter(f"no decision log at {db}")
    from credit_api.decision_log import SqliteDecisionLog

    log = SqliteDecisionLog(db)
    try:
        return log.records()
    finally:
        log.close()


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _print_comparison(found: dict[str, Any], rows: int) -> None:
    from credit_api import shadow as shadows

    n = found["n"]
    champions = ", ".join(f"{v} ({k})" for v, k in found["champion_versions"].items()) or "-"
    typer.echo(f"shadow {found['shadow_version']} against champion {champions}: {n} decisions scored by both")
    typer.echo(f"same decision: {found['agree']} ({_percent(found['agree'], n)})")
    swaps = found["swaps"]
    typer.echo(
        "swap set: champion approves, shadow declines"
        f" {swaps['champion_approves_shadow_declines']};"
        f" champion declines, shadow approves {swaps['champion_declines_shadow_approves']}"
    )
    typer.echo("champion / shadow".ljust(20) + "".join(f"{d:>10}" for d in shadows.DECISIONS))
    for decision, row in found["decisions"].items():
        typer.echo(f"{decision:<20}" + "".join(f"{row[d]:>10}" for d in shadows.DECISIONS))
    auc = found["auc"]
    if auc["champion"] is None:
        typer.echo(f"AUC: not yet ({auc['n']} outcomes, {auc['defaults']} defaults: both classes are needed)")
    else:
        typer.echo(
            f"AUC on the same {auc['n']} loans ({auc['defaults']} defaults):"
            f" champion {auc['champion']:.4f}, shadow {auc['shadow']:.4f}"
        )
    for swap in found["swap_rows"][:rows]:
        typer.echo(
            f"  {swap['decision_id']}  champion {swap['champion_decision']} ({swap['champion_probability']})"
            f"  shadow {swap['shadow_decision']} ({swap['shadow_probability']})"
        )


@shadow_app.command("compare")
def shadow_compare(
    table: Annotated[
        str | None, typer.Option("--table", envvar="DECISIONS_TABLE", help="The decisions table (DynamoDB).")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", envvar="DECISIONS_DB", help="A local SQLite decision log.")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="The shadow version to compare (default: the latest).")
    ] = None,
    rows: Annotated[int, typer.Option(min=0, help="Swap rows to list.")] = 10,
    as_json: Json = False,
) -> None:
    """Champion against shadow on live traffic: the swap set, and both AUCs on the loans with outcomes."""
    from credit_api import shadow as shadows

    found = shadows.compare(_decision_records(table, db), version)
    if as_json:
        _echo_json(found)
        return
    if found["n"] == 0:
        typer.echo("no decision carries a shadow score" + (f" of {version}" if version else ""))
        return
    _print_comparison(found, rows)
