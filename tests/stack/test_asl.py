"""Every state machine in template.yaml passes npm's asl-validator, which refuses broken copies.

The validator lives in its own folder (``make asl``; ``make test`` runs that first). It checks the
Amazon States Language itself (state types, fields, Distributed Map's ItemReader, ItemBatcher and
ResultWriter, paths), which cfn-lint does not read from a ``DefinitionUri`` file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.template import ROOT, load, resources_of_type

VALIDATOR = ROOT / ".asl-validator" / "node_modules" / ".bin" / "asl-validator"


def definitions() -> dict[str, Path]:
    machines = resources_of_type(load(), "AWS::Serverless::StateMachine")
    return {name: ROOT / machine["Properties"]["DefinitionUri"] for name, machine in machines.items()}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        message = f"{VALIDATOR} is missing: run `make asl`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def distributed_map(definition: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in definition["States"].values() if s.get("ItemProcessor"))


def test_the_template_has_both_state_machines() -> None:
    assert set(definitions()) == {"PortfolioStateMachine", "OutcomesStateMachine"}


@pytest.mark.parametrize("name", sorted(definitions()))
def test_each_definition_is_valid(name: str) -> None:
    result = validate(definitions()[name])
    assert result.returncode == 0, result.stdout + result.stderr


BREAKS = {
    "no StartAt": lambda d: d.pop("StartAt"),
    "a Next to no state": lambda d: d["States"][d["StartAt"]].update(Next="Nowhere"),
    "batch size as text": lambda d: distributed_map(d)["ItemBatcher"].update(MaxItemsPerBatch="many"),
    "an unknown field on the map": lambda d: distributed_map(d).update(Parallelism=40),
}


@pytest.mark.parametrize("change", sorted(BREAKS))
def test_a_broken_definition_is_refused(change: str, tmp_path: Path) -> None:
    source = definitions()["PortfolioStateMachine"]
    definition = json.loads(source.read_text())
    BREAKS[change](definition)
    broken = tmp_path / source.name
    broken.write_text(json.dumps(definition))
    assert validate(broken).returncode != 0
