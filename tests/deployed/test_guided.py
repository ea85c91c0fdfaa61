"""`sam deploy --guided` can undo a choice: driven through its prompts with answers, against
moto's CloudFormation and S3 on 127.0.0.1, it saves what was typed in samconfig.toml.

The guided prompt offers the previous value of each parameter and keeps it on an empty answer,
so an optional parameter whose "not set" value is empty could never be cleared once set. The
template's optional parameters use the word `none` instead: typing it clears them. The deploy
itself fails at the change set (moto does not run the SAM transform); the settings are saved
before that, which is what this checks."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import free_port, wait_for_http  # noqa: E402

SAM = os.environ.get("SAM", str(ROOT / ".venv-sam" / "bin" / "sam"))


@pytest.fixture(scope="module")
def aws_endpoint():
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/moto-api/")
        # SAM's own bucket stack, as `sam deploy` would have created it once.
        cf = boto3.client("cloudformation", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        cf.create_stack(
            StackName="aws-sam-cli-managed-default",
            TemplateBody=json.dumps({
                "Resources": {"SamCliSourceBucket": {"Type": "AWS::S3::Bucket"}},
                "Outputs": {"SourceBucket": {"Value": {"Ref": "SamCliSourceBucket"}}},
            }),
            Tags=[{"Key": "ManagedStackSource", "Value": "AwsSamCli"}],
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def parameter_names():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return list(yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)["Parameters"])


def guided(workdir, endpoint, answers):
    """Runs the guided deploy, answering each parameter from `answers` (empty: keep the value
    offered); returns what it printed and the parameters it saved."""
    lines = ["vpc-flow-alert", "us-east-1"]
    lines += [answers.get(name, "") for name in parameter_names()]
    # Confirm changes, allow role creation, disable rollback, save, file, environment.
    lines += ["n", "y", "n", "y", "", ""]
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    out = subprocess.run([SAM, "deploy", "--guided", "--template-file", "template.yaml"],
                         input="\n".join(lines) + "\n", text=True, capture_output=True,
                         cwd=workdir, env=env, timeout=300)
    config = tomllib.loads((workdir / "samconfig.toml").read_text())
    overrides = config["default"]["deploy"]["parameters"]["parameter_overrides"]
    saved = dict(item.split("=", 1) for item in _split(overrides))
    return out.stdout, {k: v.strip('"') for k, v in saved.items()}


def _split(overrides):
    """`A="x y" B="z"` -> ['A="x y"', 'B="z"']."""
    items, current, quoted = [], "", False
    for c in overrides:
        if c == '"':
            quoted = not quoted
        if c == " " and not quoted:
            items.append(current)
            current = ""
        else:
            current += c
    return items + [current]


def test_a_phone_number_a_vpc_and_ignored_sources_can_be_cleared_by_typing_none(tmp_path, aws_endpoint):
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    _, first = guided(tmp_path, aws_endpoint, {
        "VpcCidrs": "10.0.0.0/16", "VpcId": "vpc-0123456789abcdef0", "AlertEmail": "me@example.com",
        "AlertPhoneNumber": "+14155550100", "IgnoreSourceCidrs": "10.0.5.9", "KmsKeyId": "alias/alerts",
    })
    assert (first["AlertPhoneNumber"], first["VpcId"], first["IgnoreSourceCidrs"]) == (
        "+14155550100", "vpc-0123456789abcdef0", "10.0.5.9")

    printed, second = guided(tmp_path, aws_endpoint, {
        "AlertPhoneNumber": "none", "VpcId": "none", "ExistingLogGroupName": "/vpc/flow-logs",
        "IgnoreSourceCidrs": "none", "KmsKeyId": "none",
    })
    assert "Parameter AlertPhoneNumber [+14155550100]" in printed, "the previous value is offered"
    assert second["AlertPhoneNumber"] == "none"
    assert second["VpcId"] == "none" and second["ExistingLogGroupName"] == "/vpc/flow-logs"
    assert second["IgnoreSourceCidrs"] == "none" and second["KmsKeyId"] == "none"
    assert second["AlertEmail"] == "me@example.com", "an empty answer keeps the previous value"
