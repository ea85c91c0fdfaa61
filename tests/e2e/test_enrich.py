"""The sender named: the function looks the address up in EC2 (moto's, populated with a VPC, a
subnet and an instance with a Name tag at the sender's address), and an EC2 that answers
errors or nothing never holds an alert back."""

import json

import pytest

from conftest import aws
from test_function import event_file, make_event, reject


@pytest.fixture
def web_7(moto):
    """An instance named web-7 at 10.0.3.7, in a security group named web."""
    ec2 = aws("ec2", moto)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.3.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet,
        PrivateIpAddress="10.0.3.7", SecurityGroupIds=[group],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-7"}]}],
    )["Instances"][0]
    yield {"instance": instance["InstanceId"], "group": group, "subnet": subnet, "vpc": vpc}
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])


def start(start_function, subscriber, moto, **env):
    return start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto,
                           "ENRICH": "true", **env})


def test_the_alert_names_the_instance_its_name_and_groups(start_function, subscriber, moto, web_7):
    runtime, _ = start(start_function, subscriber, moto)
    kind, summary, _ = runtime.invoke(event_file("port-scan"))
    assert kind == "response" and summary["enrich_errors"] == 0, summary
    [alert] = subscriber.receive(expected=1)
    assert alert["Subject"].startswith("[HIGH] Port scan from web-7 (10.0.3.7): 25 ports on 1 host"), alert["Subject"]
    owner = json.loads(alert["Message"])["owner"]
    assert owner["found"] and owner["instance_id"] == web_7["instance"] and owner["name"] == "web-7"
    assert owner["security_groups"] == [f"{web_7['group']} (web)"]
    assert (owner["subnet_id"], owner["vpc_id"]) == (web_7["subnet"], web_7["vpc"])
    [page] = subscriber.receive_pages(expected=1)
    assert "web-7 (10.0.3.7)" in json.loads(page["Message"])["text"]


def test_an_address_nothing_owns_is_said_so(start_function, subscriber, moto, web_7):
    runtime, _ = start(start_function, subscriber, moto)
    runtime.invoke(make_event([reject("10.0.4.99")]))
    [alert] = subscriber.receive(expected=1)
    body = json.loads(alert["Message"])
    assert body["owner"] == {**body["owner"], "found": False, "instance_id": None}
    assert "from 10.0.4.99:" in alert["Subject"]


@pytest.mark.parametrize("fault", ["server-error", "hang"])
def test_an_ec2_that_fails_or_hangs_never_holds_an_alert_back(start_function, subscriber, fault_proxy, web_7, fault):
    fault_proxy.ec2_fault = fault
    runtime, fn = start(start_function, subscriber, fault_proxy.upstream, AWS_ENDPOINT_URL_EC2=fault_proxy.url)
    kind, summary, left = runtime.invoke(make_event([reject("10.0.3.7")]), timeout_ms=10_000)
    assert kind == "response" and summary["published"] == 2 and summary["enrich_errors"] == 1, summary
    assert left > 8, "the lookup gave up within its budget"
    [alert] = subscriber.receive(expected=1)
    assert json.loads(alert["Message"])["owner"] is None
    out, _ = fn.stop()
    assert "alerts go out without the senders' owners" in out
