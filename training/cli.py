"""``credit``: one command line for the whole life of the model.

Each subcommand only parses its options and calls the plain function that does the work
(``training.data.build``, ``training.train.train``, ``infra.local_stack.serve`` ...), so the
same work is reachable from Python and tests. Those modules are imported inside the commands:
``credit --help`` loads no pandas, scikit-learn, onnxruntime or boto3, and touches nothing.

``score`` runs a CSV file through the API's own service layer
(:class:`credit_api.service.DecisionService`, the bundled model, a local decision log), so a
file scored here gets the decisions the API would give for the same rows.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer

from training import cli_decisions, cli_models, cli_policy

if TYPE_CHECKING:
    from credit_api.service import DecisionService

app = typer.Typer(
    name="credit",
    help="Operate the loan-default service: data, training, serving, scoring, retraining, benchmarks.",
    epilog=(
        "Typical order: credit data, credit eda, credit train, credit serve.\n\n"
        "Against local AWS (moto): credit local-stack in one shell, then credit retrain in another."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cli_models.app, name="models")
app.add_typer(cli_policy.app, name="policy")
app.add_typer(cli_decisions.app, name="decisions")

SCORE_COLUMNS = (
    "decision",
    "probability_of_default",
    "score",
    "risk_grade",
    "reasons",
    "model_version",
    "decision_id",
    "error",
)
"""What ``credit score`` adds to each row, after the row's own columns."""


@app.command(epilog="Example: credit data --raw data/raw/germancredit.csv")
def data(
    raw: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The UCI germancredit.csv (its sha256 is checked). Default: training.data.RAW_CSV.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the derived CSV. Default: data/credit.csv.")
    ] = None,
) -> None:
    """Derive data/credit.csv from the raw UCI file: codes mapped, protected attributes dropped."""
    from training.data import CREDIT_CSV, RAW_CSV, build, sha256_file

    try:
        written = build(raw or RAW_CSV, out or CREDIT_CSV)
    except FileNotFoundError as exc:
        raise typer.BadParameter(f"no raw file at {exc.filename}", param_hint="--raw") from None
    except ValueError as exc:  # not the documented file, or a value without a code
        raise typer.BadParameter(str(exc), param_hint="--raw") from None
    typer.echo(f"wrote {written} sha256={sha256_file(written)}")


@app.command(epilog="Example: credit eda --reports /tmp/reports")
def eda(
    data: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="The data set. Default: data/credit.csv.")
    ] = None,
    reports: Annotated[
        Path | None, typer.Option(help="Where eda.md and its plots go. Default: reports/.")
    ] = None,
) -> None:
    """Exploratory analysis: class balance, default rate and information value per input, correlations."""
    from training.data import CREDIT_CSV, load, sha256_file
    from training.eda import write
    from training.train import REPORTS_DIR

    source = data or CREDIT_CSV
    typer.echo(f"wrote {write(load(source), reports or REPORTS_DIR, data_sha256=sha256_file(source))}")


@app.command(
    epilog=(
        "Examples: credit train; credit train --quick --out /tmp/model --reports /tmp/reports\n\n"
        "There is no separate export step: the search's fitted champion lives only inside this run,"
        " so training ends by exporting it (model.onnx and manifest.json, parity-checked) to --out."
    )
)
def train(
    data: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="The training data. Default: data/credit.csv."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where model.onnx and manifest.json go. Default: function/model/.")
    ] = None,
    reports: Annotated[Path | None, typer.Option(help="Where the reports go. Default: reports/.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed. Default: training.config.SEED.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small search, for smoke tests.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for the outer folds.")] = 2,
    raw: Annotated[
        Path | None,
        typer.Option(
            help="The raw UCI file (protected attributes for the fairness report). Default: data/raw/."
        ),
    ] = None,
    card: Annotated[Path | None, typer.Option(help="The model card. Default: docs/model-card.md.")] = None,
) -> None:
    """Train: EDA, nested-CV model search, champion, economics, export, fairness report, model card."""
    from training import config, fairness, model_card
    from training.data import CREDIT_CSV, RAW_CSV, load
    from training.train import MODEL_DIR, REPORTS_DIR
    from training.train import train as run_training

    raw = raw or RAW_CSV
    if not raw.is_file():  # checked first: the fairness report needs it after a long search
        raise typer.BadParameter(
            f"{raw} not found: reports/fairness.md needs the raw UCI file", param_hint="--raw"
        )
    frame = load(data or CREDIT_CSV)
    result = run_training(
        frame,
        out_dir=out or MODEL_DIR,
        seed=config.SEED if seed is None else seed,
        quick=quick,
        reports_dir=reports or REPORTS_DIR,
        n_jobs=jobs,
        progress=typer.echo,
    )
    typer.echo(f"champion {result.champion}: {result.manifest_path}")
    report = fairness.run(result, frame, raw, quick=quick, n_jobs=jobs)
    fairness.write(report, result.reports_dir)
    written = model_card.write(result.reports_dir, result.manifest, card or model_card.CARD)
    typer.echo(f"fairness: {result.reports_dir / fairness.REPORT}; model card: {written}")


@app.command("model-card", epilog="Example: credit model-card --card /tmp/model-card.md")
def model_card_command(
    reports: Annotated[
        Path | None, typer.Option(help="Where training wrote its JSON. Default: reports/.")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="The model directory. Default: function/model/.")] = None,
    card: Annotated[Path | None, typer.Option(help="The model card. Default: docs/model-card.md.")] = None,
) -> None:
    """Re-render reports/fairness.md and the model card from the numbers training wrote, without training."""
    from training import model_card
    from training.train import MODEL_DIR, REPORTS_DIR

    typer.echo(model_card.rerender(reports or REPORTS_DIR, model or MODEL_DIR, card or model_card.CARD))


@app.command(epilog="Example: credit serve --port 8080; then open http://127.0.0.1:8080/")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API and the web page with uvicorn (settings from the environment, as in Lambda)."""
    import uvicorn

    uvicorn.run("credit_api.main:app", host=host, port=port)


@app.command("local-stack", epilog="Example: credit local-stack --env-file var/local-stack.env")
def local_stack(
    port: Annotated[int, typer.Option(min=0, max=65535, help="moto's port; 0 picks a free one.")] = 5000,
    env_file: Annotated[
        Path | None, typer.Option(help="Also write the function's environment here, as shell exports.")
    ] = None,
) -> None:
    """Run moto on 127.0.0.1 with the template's bucket and table and the bundled champion, until Ctrl-C."""
    from infra.local_stack import serve as serve_stack

    serve_stack(port, env_file)


@app.command(epilog="Example: credit seed --bucket credit-risk-modelbucket-abc123")
def seed(
    bucket: Annotated[str, typer.Option(help="The stack's ModelBucketName output.")],
    model_dir: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="The model to publish as champion. Default: function/model/."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="The training data to upload. Default: data/credit.csv."
        ),
    ] = None,
) -> None:
    """Seed a deployed model bucket once: data/credit.csv under data/ and a model as champion.

    Uses the caller's AWS credentials; AWS_ENDPOINT_URL, when set, points it elsewhere (moto).
    """
    import boto3

    from infra.seed import BUNDLED_MODEL, DATA_CSV, DATA_KEY
    from infra.seed import seed as seed_bucket

    pointer = seed_bucket(boto3.client("s3"), bucket, model_dir or BUNDLED_MODEL, data or DATA_CSV)
    typer.echo(f"s3://{bucket}/{DATA_KEY} uploaded; champion {pointer['model_version']} at {pointer['key']}")


@app.command(
    epilog=(
        "Example: credit score applicants.csv decisions.csv\n\n"
        "The CSV needs the 16 input columns (credit_api/schema.py); other columns are copied to the"
        " output untouched. Exit status 0 even when some rows are invalid: see the summary."
    )
)
def score(
    input_csv: Annotated[
        Path,
        typer.Argument(
            metavar="IN.CSV", exists=True, dir_okay=False, help="Applicants, one per row, with a header."
        ),
    ],
    output_csv: Annotated[Path, typer.Argument(metavar="OUT.CSV", help="The rows with their decisions.")],
    model_dir: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="The model to score with. Default: the bundled function/model/.",
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(
            help="Keep the decision records in this SQLite file (as the local API does)."
            " Default: a temporary log, discarded, and no decision ids in the output."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Applicants per model run.")] = 500,
) -> None:
    """Score a CSV file of applicants locally with the API's own decision code.

    Each valid row gets the decision, probability of default, score, risk grade and principal
    reasons the API would give; a row that fails the applicant schema gets its errors instead.
    """
    from credit_api.decision_log import SqliteDecisionLog
    from credit_api.model_store import ModelStore
    from credit_api.service import DecisionService
    from credit_api.settings import BUNDLED_MODEL_DIR, Settings

    rows, header = _read_rows(input_csv)
    settings = Settings(model_dir=model_dir or BUNDLED_MODEL_DIR)
    with tempfile.TemporaryDirectory(prefix="credit-score-") as tmp:
        decisions = SqliteDecisionLog(log or Path(tmp) / "decisions.sqlite3")
        try:
            service = DecisionService(ModelStore(settings), decisions)
            scored = _score_rows(service, rows, batch_size, keep_ids=log is not None)
        finally:
            decisions.close()
    _write_rows(output_csv, header, rows, scored)
    typer.echo(summary(scored))


def applicant_or_errors(row: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """One CSV row as the API's validated applicant, or None and the API's own error messages."""
    from credit_api.rows import applicant_or_errors as checked

    applicant, errors = checked(row)
    return applicant, "; ".join(detail["message"] for detail in errors)


def _read_rows(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    from credit_api.schema import FEATURE_NAMES

    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [name for name in FEATURE_NAMES if name not in header]
        if missing:
            raise typer.BadParameter(
                f"{path} lacks the input columns {', '.join(missing)}", param_hint="IN.CSV"
            )
        clash = [name for name in SCORE_COLUMNS if name in header]
        if clash:
            raise typer.BadParameter(
                f"{path} already has columns {', '.join(clash)}, which the output adds", param_hint="IN.CSV"
            )
        rows = [{k: v or "" for k, v in row.items() if k is not None} for row in reader]
    return rows, header


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _score_rows(
    service: DecisionService, rows: Sequence[dict[str, str]], batch_size: int, *, keep_ids: bool
) -> list[dict[str, Any]]:
    """One output entry per row: the service's answer for a valid row, the errors for an invalid one."""
    from credit_api.observability import metrics
    from credit_api.service import Call

    checked = [applicant_or_errors(row) for row in rows]
    valid = [i for i, (applicant, _) in enumerate(checked) if applicant is not None]
    results: list[dict[str, Any]] = [{"error": error} for _, error in checked]
    call = Call(request_id=f"credit-score-{os.getpid()}", caller="credit-score")
    with _service_logs_quiet(), typer.progressbar(length=len(rows), label="scoring", file=sys.stderr) as bar:
        bar.update(len(rows) - len(valid))
        for chunk in _chunks(valid, batch_size):
            answers, _ = service.predict_batch([checked[i][0] for i in chunk], call)
            metrics.clear_metrics()  # no Lambda invocation here to publish them
            for i, answer in zip(chunk, answers, strict=True):
                results[i] = {**answer, "error": ""}
                if not keep_ids:
                    results[i]["decision_id"] = ""
            bar.update(len(chunk))
    return results


@contextmanager
def _service_logs_quiet() -> Iterator[None]:
    """The service logs each batch as JSON for CloudWatch; on a terminal only warnings matter."""
    from credit_api.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def _write_rows(
    path: Path, header: list[str], rows: Sequence[dict[str, str]], scored: Sequence[dict[str, Any]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, [*header, *SCORE_COLUMNS], lineterminator="\n")
        writer.writeheader()
        for row, result in zip(rows, scored, strict=True):
            reasons = "; ".join(r["message"] for r in result.get("reasons", []))
            writer.writerow({**row, **{k: result.get(k, "") for k in SCORE_COLUMNS}, "reasons": reasons})


def summary(scored: Sequence[dict[str, Any]]) -> str:
    """``approve 3 (60%), review 1 (20%), decline 0 (0%), invalid 1 (20%) of 5 rows``."""
    from credit_api.policy import DecisionLabel

    if not scored:
        return "no rows"
    counts = Counter(result.get("decision") or "invalid" for result in scored)
    total = len(scored)
    parts = [
        f"{name} {counts[name]} ({counts[name] / total:.0%})"
        for name in (*get_args(DecisionLabel), "invalid")
    ]
    return ", ".join(parts) + f" of {total} rows"


@app.command(
    epilog=(
        "Example, against the local stack (credit local-stack --env-file var/local-stack.env):"
        " source var/local-stack.env && credit retrain --quick"
    )
)
def retrain(
    bucket: Annotated[str, typer.Option(envvar="MODEL_BUCKET", help="The model bucket.")],
    table: Annotated[str, typer.Option(envvar="DECISIONS_TABLE", help="The decisions table.")],
    quick: Annotated[bool, typer.Option("--quick", help="A small search, for smoke tests.")] = False,
) -> None:
    """Run the scheduled retrain once: train a challenger on data + outcomes, promote it only if it wins.

    AWS_ENDPOINT_URL, when set, points it at another endpoint (the local stack's moto).
    """
    import json

    import boto3

    from training.retrain import RetrainSettings
    from training.retrain import retrain as run_retrain

    settings = RetrainSettings(
        bucket=bucket, table=table, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, quick=quick
    )
    session = boto3.session.Session()
    result = run_retrain(
        session.client("s3", endpoint_url=settings.endpoint_url),
        session.client("dynamodb", endpoint_url=settings.endpoint_url),
        settings,
    )
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command(
    epilog=(
        "Examples: credit monitor --db var/decisions.sqlite3;"
        " credit monitor --bucket B --table T --date 2026-12-01 (AWS_ENDPOINT_URL for the local stack)"
    )
)
def monitor(
    bucket: Annotated[
        str | None,
        typer.Option(envvar="MODEL_BUCKET", help="The model bucket: champion read, report written there."),
    ] = None,
    table: Annotated[
        str | None, typer.Option(envvar="DECISIONS_TABLE", help="The decisions table (DynamoDB).")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", envvar="DECISIONS_DB", help="A local SQLite decision log instead.")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="Another AWS endpoint (moto).")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Champion manifest without --bucket. Default: function/model/."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="The reports directory. Default: reports/.")] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="The report's date, YYYY-MM-DD (UTC). Default: today.")
    ] = None,
) -> None:
    """Monitoring report: drift, outcomes, calibration and fairness, each green/amber/red (HTML + JSON).

    Written under <out>/monitoring/<date>/ and, with --bucket, under reports/monitoring/<date>/ in it;
    latest.json last. With --bucket and --table it is the daily MonitorFunction's own run (no Scan:
    the bounded window and the labelled snapshot); --table alone reads every record.
    """
    from datetime import UTC, date, datetime

    from training import monitoring
    from training.train import REPORTS_DIR

    try:
        report_day = date.fromisoformat(day) if day else datetime.now(UTC).date()
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a YYYY-MM-DD date", param_hint="--date") from None
    if bucket and table:
        report, written = _monitor_deployed(bucket, table, endpoint_url, report_day)
    else:
        report, written = _monitor_local(bucket, table, db, endpoint_url, manifest, report_day)
    latest = monitoring.write_local(report, out or REPORTS_DIR)
    typer.echo(f"wrote {latest}: status {report['status']}")
    if written:
        typer.echo(f"wrote s3://{bucket}/{written['latest']}")
    for line in report["headline"]:
        typer.echo(f"  {line['status']:<12} {line['label']}: {line['summary']}")


def _monitor_deployed(
    bucket: str, table: str, endpoint_url: str | None, report_day: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """The daily MonitorFunction's own read and report (:func:`training.monitoring.run_aws`): the
    bounded window, the shared labelled snapshot, no Scan; written to the bucket, pointer last."""
    import boto3

    from training import monitoring

    session = boto3.session.Session()
    s3 = session.client("s3", endpoint_url=endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    return monitoring.run_aws(s3, dynamodb, bucket, table, report_day)


def _monitor_local(
    bucket: str | None,
    table: str | None,
    db: Path | None,
    endpoint_url: str | None,
    manifest: Path | None,
    report_day: Any,
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """A report from a local log (or, without a bucket, every record of a table) and a champion
    from the bucket or a manifest file; written to the bucket too when one is given."""
    from training import monitoring
    from training.train import MODEL_DIR

    records = monitoring.visible(_monitor_records(table, db, endpoint_url), report_day)
    if not bucket:
        champion = monitoring.champion_from_file(manifest or MODEL_DIR / "manifest.json")
        return monitoring.build(records, champion, report_day, shadow=monitoring.local_shadow(records)), None
    import boto3
    from credit_api.shadow import report_comparison

    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint_url)
    shadow = report_comparison(s3, bucket, records) or monitoring.local_shadow(records)
    report = monitoring.build(records, monitoring.champion_from_s3(s3, bucket), report_day, shadow=shadow)
    return report, monitoring.write_s3(s3, bucket, report)


def _monitor_records(table: str | None, db: Path | None, endpoint_url: str | None) -> list[dict[str, Any]]:
    if table:
        import boto3
        from credit_api.decision_reads import scan_decisions

        return scan_decisions(boto3.session.Session().client("dynamodb", endpoint_url=endpoint_url), table)
    if db is None or not db.is_file():
        raise typer.BadParameter("give --table (DECISIONS_TABLE) or --db (DECISIONS_DB), an existing file")
    from credit_api.decision_log import SqliteDecisionLog

    log = SqliteDecisionLog(db)
    try:
        return log.records()
    finally:
        log.close()


@app.command(epilog="Example: credit bench --cold-runs 3 --singles 300 --batches 5 --out /tmp/BENCH.md")
def bench(
    cold_runs: Annotated[int, typer.Option(min=1, help="Fresh processes per build for the cold start.")] = 12,
    singles: Annotated[int, typer.Option(min=1, help="Warm single-applicant calls per build.")] = 3000,
    batches: Annotated[int, typer.Option(min=1, help="Warm batches of 1000 per build.")] = 30,
    out: Annotated[Path | None, typer.Option(help="The report to (re)write. Default: BENCHMARKS.md.")] = None,
    shadow_singles: Annotated[
        int, typer.Option(min=1, help="Single calls timed with and without a shadow challenger.")
    ] = 3000,
) -> None:
    """Benchmark the function against the obvious scikit-learn + pandas build; writes BENCHMARKS.md."""
    from bench.run import ROOT, Options, run

    options = Options(cold_runs, singles, batches, out or ROOT / "BENCHMARKS.md", shadow_singles)
    typer.echo(run(options))


class LoadConfig(StrEnum):
    """Where ``credit load`` sends its clients."""

    uvicorn = "uvicorn"
    lambda_ = "lambda"


@app.command(
    epilog="Example: credit load --config uvicorn --level 1 --level 8 --requests-per-client 5 --no-write"
)
def load(
    requests_per_client: Annotated[
        int, typer.Option(min=1, help="Requests each client sends, one by one.")
    ] = 20,
    level: Annotated[
        list[int] | None,
        typer.Option(min=1, help="Concurrent clients; repeat for several. Default: 1, 8, 32, 64."),
    ] = None,
    config: Annotated[
        list[LoadConfig] | None,
        typer.Option(
            help="uvicorn, or the Lambda handler behind the gateway stand-in; repeat. Default: both."
        ),
    ] = None,
    write: Annotated[bool, typer.Option(help="Write the load section of BENCHMARKS.md.")] = True,
) -> None:
    """Load campaign: the API under concurrent clients, then a check that no decision was lost.

    Exits 1 when the decision log does not match the answers given (each problem on stderr).
    """
    from bench.load import CONFIGS, LEVELS, run

    configs = [c.value for c in config] if config else list(CONFIGS)
    text, problems = run(configs, requests_per_client, tuple(level) if level else LEVELS, write=write)
    typer.echo(text)
    for problem in problems:
        typer.echo(f"INTEGRITY: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
