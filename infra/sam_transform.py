"""Print the CloudFormation that SAM makes of ``template.yaml`` (what ``sam deploy`` submits), as JSON.

    AWS_DEFAULT_REGION=us-east-1 .venv-sam/bin/python infra/sam_transform.py > transformed.json

Runs under ``.venv-sam`` (aws-sam-translator comes with aws-sam-cli), offline: like
``sam validate``, it stands placeholder S3 and ECR locations in for the local code and image.
Tests read the generated API definition from it (which methods require an API key).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform

CODE_PLACEHOLDER = "s3://bucket/key"
IMAGE_PLACEHOLDER = "123456789012.dkr.ecr.us-east-1.amazonaws.com/repository:tag"


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only when a template names them by name."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # .venv-sam does not install the repo
    from infra.template import ROOT, load

    template = load()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            if properties.get("PackageType") == "Image":
                properties["ImageUri"] = IMAGE_PLACEHOLDER
            else:
                properties["CodeUri"] = CODE_PLACEHOLDER
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            # `sam deploy` uploads the definition file; offline, the translator takes it inline.
            properties = resource["Properties"]
            definition = ROOT / properties.pop("DefinitionUri")
            properties["Definition"] = json.loads(definition.read_text())
    json.dump(transform(template, {}, _NoManagedPolicies()), sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
