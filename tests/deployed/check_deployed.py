"""Checks what CloudFormation deploys, not what template.yaml says.

cfn-lint no longer expands SAM (since 1.54), so the role, the policies and the invoke
configuration that `AWS::Serverless::Function` turns into are never linted from the template.
This expands the template offline with the SAM translator (the code the SAM transform runs;
conditions stay in the result, as CloudFormation evaluates them at deploy time), writes the
expansion to OUT, and fails if any role or policy in it allows an action on `*` beyond the
allowlist below, or attaches a managed policy (whose statements it cannot see).

Usage: python tests/deployed/check_deployed.py OUT.json
Then cfn-lint and checkov run on OUT.json (see `make template` and `make policy`).
"""

import os
import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
# The translator asks boto for the region of its pseudo parameters; no call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Actions on `*` that are allowed, each with the reason (no resource-level permission exists).
STAR_ALLOWED = {
    "ec2:DescribeNetworkInterfaces": "Describe* actions of EC2 take no resource-level permissions",
    "ec2:DescribeInstances": "Describe* actions of EC2 take no resource-level permissions",
}

class PolicyLoader:
    """The managed policies the translator may look up, offline."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        }


def expand():
    template = yaml_parse((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder-bucket/function.zip"
            resource.get("Metadata", {}).pop("BuildMethod", None)
    return transform(template, {"AWS::Region": "us-east-1"}, PolicyLoader())


def statements(document):
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value):
    return value if isinstance(value, list) else [value]


def policy_problems(expanded):
    problems = []
    for name, resource in expanded["Resources"].items():
        kind = resource["Type"]
        props = resource.get("Properties", {})
        documents = []
        if kind == "AWS::IAM::Role":
            for arn in props.get("ManagedPolicyArns", []):
                problems.append(f"{name}: attaches the managed policy {arn}, whose statements are not checked")
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in statements(document):
                if statement.get("Effect") != "Allow":
                    continue
                resources = as_list(statement.get("Resource", []))
                if "*" not in resources:
                    continue
                for action in as_list(statement.get("Action", [])):
                    if action not in STAR_ALLOWED:
                        problems.append(f"{name}: allows {action} on *")
    return problems


def self_test():
    """The check finds what it must: a `*` resource, a managed policy; and passes the allowlist."""
    role = {"Type": "AWS::IAM::Role", "Properties": {
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        "Policies": [{"PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": ["logs:PutLogEvents", "ec2:DescribeInstances"], "Resource": "*"},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:us-east-1:1:t"},
        ]}}]}}
    found = policy_problems({"Resources": {"R": role}})
    assert found == ["R: attaches the managed policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole, "
                     "whose statements are not checked", "R: allows logs:PutLogEvents on *"], found


def main():
    self_test()
    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    expanded = expand()
    target.write_text(json.dumps(expanded, indent=1, default=str))
    problems = policy_problems(expanded)
    for problem in problems:
        print(f"{target.name}: {problem}")
    print(f"{target.name}: {len(expanded['Resources'])} resources after the SAM transform; "
          + ("problems above" if problems else "no role allows an action on * beyond the allowlist"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
