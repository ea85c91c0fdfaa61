"""The template's three modes, each as CloudFormation would deploy it: the conditions are
evaluated for the mode's parameters, and what remains must hang together (every reference
names a resource of the same mode) and give the function only that mode's input: the stream
in organization mode, the bucket's flow log objects in s3 mode, neither in subscription mode.
member.yaml is checked the same way against the central stack it sends to."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::NoValue", "AWS::URLSuffix"}


class Loader(yaml.SafeLoader):
    pass


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


Loader.add_multi_constructor("!", _intrinsic)


def load(name):
    return yaml.load((ROOT / name).read_text(), Loader=Loader)


def parameters(template, **given):
    values = {name: p.get("Default") for name, p in template["Parameters"].items()}
    values.update(given)
    return values


def evaluate(expr, params, conditions, template):
    """Evaluates a condition expression."""
    if isinstance(expr, dict):
        (key, value), = expr.items()
        if key == "Condition":
            return conditions[value]
        if key == "Fn::Equals":
            a, b = (value_of(v, params) for v in value)
            return a == b
        if key == "Fn::Not":
            return not evaluate(value[0], params, conditions, template)
        if key == "Fn::And":
            return all(evaluate(v, params, conditions, template) for v in value)
        if key == "Fn::Or":
            return any(evaluate(v, params, conditions, template) for v in value)
    raise AssertionError(f"unknown condition {expr}")


def value_of(v, params):
    if isinstance(v, dict) and "Ref" in v:
        return params[v["Ref"]]
    return v


def conditions_of(template, params):
    conditions = {}
    pending = dict(template.get("Conditions", {}))
    while pending:
        for name, expr in list(pending.items()):
            try:
                conditions[name] = evaluate(expr, params, conditions, template)
                del pending[name]
            except KeyError:
                continue
    return conditions


def resolve(value, conditions):
    """The value with every Fn::If decided and AWS::NoValue removed."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        out = {}
        for k, v in value.items():
            v = resolve(v, conditions)
            if v != {"Ref": "AWS::NoValue"}:
                out[k] = v
        return out
    if isinstance(value, list):
        return [resolve(v, conditions) for v in value if resolve(v, conditions) != {"Ref": "AWS::NoValue"}]
    return value


def deployed(template, **given):
    """(resources, outputs) that CloudFormation would create with these parameters."""
    params = parameters(template, **given)
    conditions = conditions_of(template, params)
    keep = lambda item: "Condition" not in item or conditions[item["Condition"]]  # noqa: E731
    resources = {n: resolve(r, conditions) for n, r in template["Resources"].items() if keep(r)}
    outputs = {n: resolve(o, conditions) for n, o in template.get("Outputs", {}).items() if keep(o)}
    return resources, outputs, params


def references(value):
    """Every resource or parameter name a value refers to."""
    found = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref":
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0])
            elif k == "Fn::Sub":
                text, names = (v, {}) if isinstance(v, str) else (v[0], v[1])
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!][^}]*)\}", text)} - set(names)
                found |= references(names)
            elif k == "DependsOn":
                found |= set([v] if isinstance(v, str) else v)
            else:
                found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    return found


def function_statements(resources):
    role = resources["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return role


def actions(statements, prefix):
    found = []
    for s in statements:
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        found += [(a, s["Resource"]) for a in acts if a.startswith(prefix)]
    return found


MODES = {
    "subscription": {"VpcId": "vpc-0123456789abcdef0"},
    "organization": {"Mode": "organization", "OrganizationId": "o-a1b2c3d4e5"},
    "s3": {"Mode": "s3", "VpcId": "vpc-0123456789abcdef0"},
}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_refers_only_to_what_it_deploys(mode):
    template = load("template.yaml")
    resources, outputs, params = deployed(template, **MODES[mode])
    known = set(resources) | set(params) | PSEUDO
    for name, item in {**resources, **{f"output {n}": o for n, o in outputs.items()}}.items():
        missing = references(item) - known
        assert not missing, f"{mode}: {name} refers to {missing}, which this mode does not deploy"


def test_subscription_mode_reads_its_log_group_and_nothing_else():
    resources, _, _ = deployed(load("template.yaml"), **MODES["subscription"])
    assert {"FlowLog", "RejectSubscription", "LogsInvokePermission", "FlowLogHeartbeatAlarm"} <= set(resources)
    assert not {"FlowStream", "FlowLogDestination", "FlowLogBucket", "ObjectCreatedRule"} & set(resources)
    statements = function_statements(resources)
    assert actions(statements, "kinesis:") == [] and actions(statements, "s3:") == []


def test_organization_mode_reads_only_the_stream_with_partial_batch_responses():
    template = load("template.yaml")
    resources, outputs, _ = deployed(template, **MODES["organization"])
    assert not {"RejectSubscription", "FlowLog", "FlowLogBucket"} & set(resources)
    stream = resources["FlowStream"]["Properties"]
    assert stream["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert stream["StreamEncryption"]["EncryptionType"] == "KMS"
    mapping = resources["FlowStreamMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRecordAgeInSeconds"] <= 21600 and mapping["MaximumRetryAttempts"] >= 1
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    statements = function_statements(resources)
    assert actions(statements, "s3:") == []
    kinesis = actions(statements, "kinesis:")
    assert kinesis and all(r == {"Fn::GetAtt": ["FlowStream", "Arn"]} for _, r in kinesis), kinesis
    assert not any(a in ("kinesis:PutRecord", "kinesis:*") for a, _ in kinesis)
    policy = resources["FlowLogDestination"]["Properties"]["DestinationPolicy"]["Fn::Sub"]
    assert '"aws:PrincipalOrgID":"${OrganizationId}"' in policy and "logs:PutSubscriptionFilter" in policy
    assert "DestinationArn" in outputs
    # Without an organization, the listed accounts and only they may subscribe.
    resources, _, _ = deployed(template, Mode="organization", MemberAccountIds=["111111111111", "222222222222"])
    policy = resources["FlowLogDestination"]["Properties"]["DestinationPolicy"]["Fn::Sub"]
    assert '"Principal":{"AWS":["${Accounts}"]}' in policy[0] and "PrincipalOrgID" not in policy[0]


def test_s3_mode_reads_only_the_flow_log_prefix_of_a_private_bucket():
    resources, outputs, _ = deployed(load("template.yaml"), **MODES["s3"])
    assert not {"RejectSubscription", "FlowLog", "FlowStream"} & set(resources)
    assert {"S3FlowLog", "ObjectCreatedRule", "EventsInvokePermission", "DeliveryHeartbeatAlarm"} <= set(resources)
    statements = function_statements(resources)
    assert actions(statements, "kinesis:") == []
    assert actions(statements, "s3:") == [("s3:GetObject", {"Fn::Sub": "${FlowLogBucket.Arn}/AWSLogs/*"})]
    bucket = resources["FlowLogBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == {"Ref": "LogRetentionDays"}
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    flow_log = resources["S3FlowLog"]["Properties"]
    assert flow_log["DestinationOptions"]["FileFormat"] == "plain-text", "Parquet is not read"
    rule = resources["ObjectCreatedRule"]["Properties"]["EventPattern"]
    assert rule["detail-type"] == ["Object Created"] and rule["detail"]["object"] == {"key": [{"prefix": "AWSLogs/"}]}
    assert "FlowLogBucketName" in outputs


def test_the_member_template_sends_the_members_flow_log_to_the_central_destination():
    member = load("member.yaml")
    resources, _, params = deployed(member, DestinationArn="arn:aws:logs:us-east-1:999999999999:destination:x",
                                    VpcId="vpc-0123456789abcdef0")
    known = set(resources) | set(params) | PSEUDO
    for name, item in resources.items():
        assert not references(item) - known, name
    subscription = resources["CentralSubscription"]["Properties"]
    assert subscription["DestinationArn"] == {"Ref": "DestinationArn"}
    assert "RoleArn" not in subscription, "a cross-account destination takes no role"
    assert resources["FlowLog"]["Properties"]["LogDestinationType"] == "cloud-watch-logs"
    # The member's flow log has the central stack's default format, so the function reads it.
    central = load("template.yaml")["Parameters"]["FlowLogFormat"]["Default"]
    assert member["Parameters"]["FlowLogFormat"]["Default"] == central
