"""``credit decisions``: one-off maintenance of the decisions table.

``backfill-day-index`` gives records written before the day index existed their ``day_shard``
(:func:`credit_api.decision_reads.backfill`): run once after the deploy that added the index,
with an operator's credentials (it Scans and updates; no function's role may). Safe to repeat.
The table comes from ``--table`` (or ``DECISIONS_TABLE``), the endpoint from ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(help="Maintenance of the decisions table (DynamoDB).", no_args_is_help=True)

Table = Annotated[
    str,
    typer.Option(
        "--table", envvar="DECISIONS_TABLE", help="The decisions table (DecisionsTableName output)."
    ),
]


@app.command(
    "backfill-day-index", epilog="Example: credit decisions backfill-day-index --table credit-risk-decisions"
)
def backfill_day_index(
    table: Table,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the records without the key.")
    ] = False,
) -> None:
    """Put every decision older than the day index into it (a conditional update each)."""
    import boto3
    from credit_api.decision_reads import backfill, missing_day_key

    dynamodb = boto3.session.Session().client(
        "dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None
    )
    if dry_run:
        typer.echo(f"{len(missing_day_key(dynamodb, table))} records without day_shard in {table}")
        return
    typer.echo(f"{backfill(dynamodb, table)} records given their day_shard in {table}")
