"""A local stand-in for the deployed storage: ``credit local-stack`` (or ``make local-stack``).

Starts a moto server on 127.0.0.1, creates the bucket and the table from ``template.yaml``'s
own resource definitions, uploads ``data/credit.csv`` to ``data/`` and publishes the bundled
model (``function/model``) as champion. It then prints the environment the template gives
``PredictFunction`` (with the local names and ``AWS_ENDPOINT_URL``), so the function runs
under uvicorn against "AWS" on loopback. Ctrl-C or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import logging
import shlex
import signal
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from infra.resources import Names, create_storage
from infra.seed import BUNDLED_MODEL, seed
from infra.template import Resolver, function_environment, load

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
STACK_NAME = "credit-risk-local"
REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    # Moto's dummies.
    "AWS_SECRET_ACCESS_KEY": "testing",  # nosec B105
}


def client(service: str, endpoint_url: str | None) -> Any:
    """A client of ``service`` for the local endpoint (or moto's in-process mock when ``None``)."""
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    return session.client(service, endpoint_url=endpoint_url)


def clients(endpoint_url: str | None) -> tuple[Any, Any]:
    """S3 and DynamoDB clients for the local endpoint (or moto's in-process mock when ``None``)."""
    return client("s3", endpoint_url), client("dynamodb", endpoint_url)


def provision(
    s3: Any, dynamodb: Any, names: Names, model_dir: Path = BUNDLED_MODEL, kms: Any | None = None
) -> dict[str, Any]:
    """The key and storage from the template, the training data under ``data/``, ``model_dir`` as champion."""
    resolver = Resolver(load(), names=names.as_refs(), region=REGION, stack_name=STACK_NAME)
    create_storage(resolver, s3, dynamodb, names, kms)
    return seed(s3, names.bucket, model_dir)


@dataclass
class LocalStack:
    """A running moto server with the stack's storage in it."""

    endpoint_url: str
    names: Names
    pointer: dict[str, Any]
    environment: dict[str, str] = field(default_factory=dict)

    def shell_exports(self) -> str:
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in self.environment.items())


def function_env(names: Names, endpoint_url: str) -> dict[str, str]:
    """``PredictFunction``'s environment from the template, pointed at the local endpoint."""
    resolver = Resolver(load(), names=names.as_refs(), region=REGION, stack_name=STACK_NAME)
    env = function_environment(resolver, "PredictFunction")
    env.update(CREDENTIALS, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, AWS_ENDPOINT_URL=endpoint_url)
    return env


@contextmanager
def running(port: int = DEFAULT_PORT, names: Names | None = None) -> Iterator[LocalStack]:
    """Start moto on ``HOST:port`` (0 picks a free port), provision it, and stop it on exit."""
    names = names or Names.for_stack(STACK_NAME)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        endpoint_url = f"http://{host}:{bound}"
        # moto keeps its state per process: a stack started before in this process (tests) left
        # its bucket, tables and key behind, so every local stack starts from moto's reset.
        urllib.request.urlopen(  # nosec B310: our own moto server on loopback
            urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=10
        ).close()
        s3, dynamodb = clients(endpoint_url)
        pointer = provision(s3, dynamodb, names, kms=client("kms", endpoint_url))
        yield LocalStack(endpoint_url, names, pointer, function_env(names, endpoint_url))
    finally:
        server.stop()


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _hold_stop_signals() -> None:
    """Block Ctrl-C and SIGTERM in this thread and the ones it starts, so ``sigwait`` takes them.

    A Python signal handler that sets an Event can deadlock against the main thread waiting on
    that Event; waiting for the signal itself cannot. A signal sent during start-up stays
    pending and stops the stack as soon as it is up.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def write_exports(stack: LocalStack, env_file: Path) -> None:
    """The stack's shell exports in ``env_file``, written whole, then renamed: a reader never sees half."""
    env_file.parent.mkdir(parents=True, exist_ok=True)
    staged = env_file.with_name(f".{env_file.name}.tmp")
    staged.write_text(stack.shell_exports() + "\n")
    staged.replace(env_file)


def serve(port: int = DEFAULT_PORT, env_file: Path | None = None) -> None:
    """Run the local stack until Ctrl-C or SIGTERM, printing how to point the function at it."""
    _hold_stop_signals()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    with running(port) as stack:
        if env_file:
            write_exports(stack, env_file)
        print(f"moto on {stack.endpoint_url}: bucket {stack.names.bucket}, table {stack.names.table}")
        print(
            f"champion {stack.pointer['model_version']} at s3://{stack.names.bucket}/{stack.pointer['key']}"
        )
        print("Run the function against it (in another shell):\n")
        print(stack.shell_exports())
        print(".venv/bin/credit serve\n")
        print("Ctrl-C stops the local stack.", flush=True)
        signal.sigwait(STOP_SIGNALS)
    print("local stack stopped", flush=True)
