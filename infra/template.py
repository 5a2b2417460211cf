"""Read ``template.yaml`` the way CloudFormation does, so local tools and tests use its own facts.

``load()`` understands the short intrinsic tags (``!Ref``, ``!Sub``, ``!GetAtt``...) and turns
them into their long JSON form; ``Resolver`` evaluates the intrinsics for one set of
parameters and physical names (a moto account, the test's temporary names). Anything it
cannot resolve raises, so a template change that local tooling does not understand fails
loudly instead of drifting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
ENV_JSON = ROOT / "infra" / "env.json"

_FN_TAGS = (
    "Base64", "Cidr", "FindInMap", "GetAZs", "If", "ImportValue", "Join", "Select", "Split", "Sub",
    "Transform", "And", "Equals", "Not", "Or",
)  # fmt: skip
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateLoader(yaml.SafeLoader):
    """A safe YAML loader that knows CloudFormation's short-form tags."""


def _construct(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _add_tag(tag: str, build: Any) -> None:
    TemplateLoader.add_constructor(f"!{tag}", lambda loader, node: build(_construct(node, loader)))


def _get_att(value: Any) -> dict[str, list[str]]:
    if isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": list(value)}


_add_tag("Ref", lambda value: {"Ref": value})
_add_tag("Condition", lambda value: {"Condition": value})
_add_tag("GetAtt", _get_att)
for _name in _FN_TAGS:
    _add_tag(_name, lambda value, _name=_name: {f"Fn::{_name}": value})


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a plain dict, intrinsics in their long form (``{"Ref": ...}``)."""
    # A SafeLoader with CFN tags.
    return yaml.load(path.read_text(), Loader=TemplateLoader)  # nosec B506


def load_env_json(path: Path = ENV_JSON) -> dict[str, dict[str, str]]:
    """``infra/env.json``: per-function overrides, as ``sam local invoke --env-vars`` reads them."""
    return json.loads(path.read_text())


def resources_of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


NO_VALUE = object()
"""What ``Ref AWS::NoValue`` resolves to: the enclosing property or list item is dropped."""


class UnresolvedError(KeyError):
    """An intrinsic names something this resolver was not given."""


@dataclass
class Resolver:
    """Evaluates intrinsics for one deployment: parameters, pseudo-parameters and physical names.

    ``names`` maps a resource's logical id to what ``Ref`` returns for it; ``attributes``
    maps ``(logical id, attribute)`` to what ``GetAtt`` returns. ``Arn`` of an S3 bucket, a
    DynamoDB table or a KMS key is derived from its name (a key's is its id) when not given.
    """

    template: Mapping[str, Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "123456789012"
    stack_name: str = "credit-risk"

    def parameter_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.get("Parameters", {}).items():
            if name in self.parameters:
                values[name] = self.parameters[name]
            elif "Default" in spec:
                values[name] = spec["Default"]
        unknown = set(self.parameters) - set(values)
        if unknown:
            raise UnresolvedError(f"parameters not in the template: {sorted(unknown)}")
        return values

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        parameters = self.parameter_values()
        if name in parameters:
            return parameters[name]
        if name in self.pseudo():
            return self.pseudo()[name]
        if name in self.names:
            return self.names[name]
        raise UnresolvedError(f"Ref {name}: not a parameter and no physical name was given")

    def get_att(self, resource: str, attribute: str) -> str:
        if (resource, attribute) in self.attributes:
            return self.attributes[(resource, attribute)]
        kind = self.template["Resources"].get(resource, {}).get("Type")
        if attribute == "Arn" and resource in self.names:
            if kind == "AWS::S3::Bucket":
                return f"arn:aws:s3:::{self.names[resource]}"
            if kind == "AWS::DynamoDB::Table":
                return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self.names[resource]}"
            if kind == "AWS::KMS::Key":
                return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.names[resource]}"
        raise UnresolvedError(f"GetAtt {resource}.{attribute}: no value was given")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def sub(self, value: str | list[Any]) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic evaluated; ``AWS::NoValue`` entries are dropped."""
        if isinstance(node, list):
            return [item for item in map(self.resolve, node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(value)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _functions(self) -> dict[str, Any]:
        return {
            "Ref": self.ref,
            "Fn::GetAtt": lambda v: self.get_att(*v),
            "Fn::Sub": self.sub,
            "Fn::Join": lambda v: str(self.resolve(v[0])).join(str(x) for x in self.resolve(v[1])),
            "Fn::Select": lambda v: self.resolve(v[1])[int(self.resolve(v[0]))],
            "Fn::Split": lambda v: str(self.resolve(v[1])).split(self.resolve(v[0])),
            "Fn::If": lambda v: self.resolve(v[1] if self.condition(v[0]) else v[2]),
            "Fn::Equals": lambda v: str(self.resolve(v[0])) == str(self.resolve(v[1])),
            "Fn::Not": lambda v: not self.resolve(v[0]),
            "Fn::And": lambda v: all(self.resolve(x) for x in v),
            "Fn::Or": lambda v: any(self.resolve(x) for x in v),
            "Condition": self.condition,
        }


def function_environment(resolver: Resolver, function: str) -> dict[str, str]:
    """The environment a function gets: ``Globals`` merged with its own, all resolved to strings."""
    template = resolver.template
    merged = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    merged.update(own)
    return {name: str(resolver.resolve(value)) for name, value in merged.items()}


def function_property(template: Mapping[str, Any], function: str, name: str) -> Any:
    """A function property, falling back to ``Globals.Function`` as SAM does."""
    own = template["Resources"][function]["Properties"]
    if name in own:
        return own[name]
    return template.get("Globals", {}).get("Function", {})[name]


def sam_local_environment(
    resolver: Resolver, function: str, env_vars: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """What ``sam local invoke --env-vars env.json`` gives ``function``.

    The template's variables, overridden by env.json's ``Parameters`` (all functions) and then
    by its entry for ``function``; SAM ignores variables the template does not declare.
    """
    env = function_environment(resolver, function)
    for section in (env_vars.get("Parameters", {}), env_vars.get(function, {})):
        env.update({name: str(value) for name, value in section.items() if name in env})
    return env
