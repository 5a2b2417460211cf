"""Which AWS calls the code makes, read two ways, and whether a template policy allows them.

Statically: every boto3 client method named in the code that a function can reach (a
name-based call graph over top-level definitions). Dynamically: every call actually sent,
recorded at botocore's ``_make_api_call`` while the code runs against moto. ``allowed``
evaluates a template's identity-policy statements (Allow only, wildcards) against a call.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.client
import botocore.session
from botocore import xform_name

SERVICES = ("s3", "dynamodb")
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
}
"""S3 operations whose IAM action has another name; the rest share the operation's name."""
S3_BUCKET_OPERATIONS = {"ListObjectsV2", "HeadBucket", "ListObjectVersions"}
S3_VERSION_ACTIONS = {"GetObject": "GetObjectVersion", "HeadObject": "GetObjectVersion"}
"""Reading an object by ``VersionId`` needs another action (only a sent call shows it)."""


@cache
def operations() -> dict[str, tuple[str, str]]:
    """``snake_case`` client method -> (service, OperationName), for the services the stack uses."""
    session = botocore.session.get_session()
    found: dict[str, tuple[str, str]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            found[xform_name(operation)] = (service, operation)
    return found


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        return f"s3:{S3_ACTIONS.get(operation, operation)}"
    return f"{service}:{operation}"


# ---------------------------------------------------------------- static


@dataclass(frozen=True)
class Definition:
    module: Path
    name: str
    node: ast.AST
    decorated: bool


def _definitions(path: Path) -> list[Definition]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append(Definition(path.resolve(), node.name, node, bool(node.decorator_list)))
        else:
            found.append(Definition(path.resolve(), f"<module {path.name}:{node.lineno}>", node, True))
    return found


def _references(node: ast.AST) -> set[str]:
    """Names a definition uses: variables, attributes and imported names."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            names.add(child.id)
        elif isinstance(child, ast.Attribute):
            names.add(child.attr)
        elif isinstance(child, ast.alias):
            names.add(child.asname or child.name.rpartition(".")[2])
    return names


def _imported_modules(node: ast.AST) -> set[tuple[str, str]]:
    """(package, module) pairs a definition imports: ``credit_api.x``, ``from training import y``."""
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found |= {tuple(a.name.rsplit(".", 1)) for a in child.names if "." in a.name}
        elif isinstance(child, ast.ImportFrom) and child.module:
            package, _, module = child.module.rpartition(".")
            if package:
                found.add((package, module))
            found |= {(child.module, a.name) for a in child.names}
    return found


def reachable(paths: Iterable[Path], roots: Iterable[Path]) -> list[Definition]:
    """Definitions in ``paths`` reachable from all code of the ``roots`` modules.

    Importing a module runs its top-level statements and its decorators (routes register
    themselves), so those count as reached for every module imported by reached code. A name
    used by reached code reaches the definitions of that name in its own module and in the
    modules its module imports.
    """
    paths = [p.resolve() for p in paths]
    definitions = [d for p in paths for d in _definitions(p)]
    key_of = {p: (p.parent.name, p.stem) for p in paths}
    imports = {p: _imported_modules(ast.parse(p.read_text())) & set(key_of.values()) for p in paths}
    by_key_and_name: dict[tuple[tuple[str, str], str], list[Definition]] = {}
    by_module: dict[tuple[str, str], list[Definition]] = {}
    for definition in definitions:
        key = key_of[definition.module]
        by_key_and_name.setdefault((key, definition.name), []).append(definition)
        if definition.decorated:
            by_module.setdefault(key, []).append(definition)
    root_set = {p.resolve() for p in roots}
    pending = [d for d in definitions if d.module in root_set]
    seen: set[int] = set()
    result = []
    while pending:
        definition = pending.pop()
        if id(definition) in seen:
            continue
        seen.add(id(definition))
        result.append(definition)
        visible = {key_of[definition.module], *imports[definition.module]}
        for name in _references(definition.node):
            for key in visible:
                pending.extend(by_key_and_name.get((key, name), []))
        for module in _imported_modules(definition.node):
            pending.extend(by_module.get(module, []))
    return result


def static_calls(definitions: Iterable[Definition]) -> set[tuple[str, str]]:
    """(service, OperationName) of every boto3 call spelled in ``definitions``."""
    known = operations()
    found = set()
    for definition in definitions:
        for node in ast.walk(definition.node):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method = node.func.attr
            if method in ("get_paginator", "can_paginate") and node.args:
                argument = node.args[0]
                if isinstance(argument, ast.Constant) and argument.value in known:
                    found.add(known[argument.value])
            elif method in known:
                found.add(known[method])
    return found


def policy_actions(statements: Sequence[Mapping[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


# ---------------------------------------------------------------- dynamic


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: Mapping[str, Any]

    def action(self) -> str:
        if self.service == "s3" and "VersionId" in self.params and self.operation in S3_VERSION_ACTIONS:
            return f"s3:{S3_VERSION_ACTIONS[self.operation]}"
        return iam_action(self.service, self.operation)

    def resource(self, region: str, account: str) -> str:
        if self.service == "s3":
            if self.operation in S3_BUCKET_OPERATIONS or "Key" not in self.params:
                return f"arn:aws:s3:::{self.params['Bucket']}"
            return f"arn:aws:s3:::{self.params['Bucket']}/{self.params['Key']}"
        if self.service == "dynamodb":
            tables = (
                [self.params["TableName"]]
                if "TableName" in self.params
                else list(self.params["RequestItems"])
            )
            (table,) = tables
            index = f"/index/{self.params['IndexName']}" if "IndexName" in self.params else ""
            return f"arn:aws:dynamodb:{region}:{account}:table/{table}{index}"
        raise AssertionError(f"unexpected service {self.service}")


@contextmanager
def recorded_calls() -> Iterator[list[Call]]:
    """Every AWS API call made inside the block, by any botocore client."""
    calls: list[Call] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
        calls.append(Call(client.meta.service_model.service_name, operation_name, dict(api_params)))
        return original(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = record
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original


def allowed(statements: Sequence[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (IAM wildcards; actions ignore case)."""
    for statement in statements:
        actions = statement["Action"]
        resources = statement["Resource"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            return True
    return False
