"""The RetrainFunction image, checked without Docker (no engine here): what it copies and installs.

``sam build`` of the image needs Docker, which this machine lacks. What can be proved here:
the base image is the Lambda python3.12 one, everything it copies exists and survives
``.dockerignore``, the command is the retrain handler, every module the retrain can import
is either copied or installed, and the pins sit inside pyproject.toml's ranges at the versions
the tests run.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
import tomllib
from importlib.metadata import distribution, packages_distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.template import ROOT

DOCKERFILE = ROOT / "training" / "Dockerfile"
REQUIREMENTS = ROOT / "training" / "requirements-retrain.txt"
API_ONLY = {"uvicorn", "typer"}
"""pyproject dependencies left out of the retrain image: the local server and the command line."""
PROJECT_PACKAGES = {"credit_api": ROOT / "function" / "credit_api", "training": ROOT / "training"}


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(c, glob) or fnmatch.fnmatch(c, glob.replace("**/", "")) for c in candidates):
            verdict = not negate
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_image_is_built_from_the_lambda_python_base_matching_the_runtime(template: dict[str, Any]) -> None:
    (base,) = [argument for op, argument in instructions() if op == "FROM"]
    assert base == "public.ecr.aws/lambda/python:3.12"
    assert template["Resources"]["PredictFunction"]["Properties"]["Runtime"] == "python3.12"
    (command,) = [argument for op, argument in instructions() if op == "CMD"]
    (handler,) = ast.literal_eval(command)
    module, _, function = handler.rpartition(".")
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file()
    assert function == "handler"


def test_everything_copied_exists_and_passes_dockerignore() -> None:
    patterns = dockerignore()
    copies = [argument.split() for op, argument in instructions() if op == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
            files = (
                [source]
                if (ROOT / source).is_file()
                else [p.relative_to(ROOT).as_posix() for p in (ROOT / source).rglob("*.py")]
            )
            assert files and not any(ignored(f, patterns) for f in files)
    for heavy in (".venv", ".venv-sam", ".aws-sam", "data/credit.csv", "function/model/model.onnx"):
        assert ignored(heavy, patterns), heavy


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_closure(start: Path) -> tuple[set[Path], set[str]]:
    """Project files the retrain can import (lazily too), and the third-party top-level modules they use."""
    files, third_party, pending = set(), set(), [start]
    while pending:
        path = pending.pop()
        if path in files:
            continue
        files.add(path)
        for name in _imports(path):
            top, *rest = name.split(".")
            if top in PROJECT_PACKAGES:
                candidate = PROJECT_PACKAGES[top].joinpath(*rest).with_suffix(".py")
                if candidate.is_file():
                    pending.append(candidate)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return files, third_party


def pins() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    return {canonicalize_name(r.name): r for r in requirements}


def installed_closure(names: set[str]) -> set[str]:
    """The distributions ``names`` pull in (what ``pip install -r`` brings into the image)."""
    seen, pending = set(), list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def test_every_module_the_retrain_imports_is_copied_or_installed() -> None:
    files, third_party = import_closure(ROOT / "training" / "retrain.py")
    copied = [ROOT / a.split()[0] for op, a in instructions() if op == "COPY"]
    for path in files:
        assert any(path.is_relative_to(c) for c in copied if c.is_dir()), path
    providers = packages_distributions()
    installed = installed_closure({r.name for r in pins().values()} | {"aws-xray-sdk"})
    missing = {m for m in third_party if not {canonicalize_name(d) for d in providers.get(m, [])} & installed}
    assert missing == set()
    assert {"sklearn", "pandas", "onnx", "boto3"} <= third_party


def test_pins_sit_in_pyprojects_ranges_at_the_tested_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["train"]]
    ranges = {canonicalize_name(r.name): r for r in declared}
    pinned = pins()
    assert set(ranges) - set(pinned) == API_ONLY
    assert set(pinned) <= set(ranges)
    for name, requirement in pinned.items():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", requirement
        assert ranges[name].specifier.contains(specifier.version), (requirement, ranges[name])
        assert distribution(name).version == specifier.version, (
            f"{name}: the tests run {distribution(name).version}"
        )
        assert requirement.extras == ranges[name].extras
