"""``credit decisions``: one-off maintenance of the decisions table.

``backfill-indexes`` gives records written before the time-keyed indexes existed their keys
(``day_shard``; ``outcome_shard`` and ``outcome_at`` for a recorded outcome;
:func:`credit_api.decision_reads.backfill`): run once after the deploy that added an index,
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
    "backfill-indexes", epilog="Example: credit decisions backfill-indexes --table credit-risk-decisions"
)
def backfill_indexes(
    table: Table,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the records missing a key.")] = False,
) -> None:
    """Put every decision older than an index into it (a conditional update each)."""
    import boto3
    from credit_api.decision_reads import backfill, missing_index_keys

    dynamodb = boto3.session.Session().client(
        "dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None
    )
    if dry_run:
        typer.echo(f"{len(missing_index_keys(dynamodb, table))} records missing an index key in {table}")
        return
    typer.echo(f"{backfill(dynamodb, table)} records given their index keys in {table}")
