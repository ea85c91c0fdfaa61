"""Organization-scale inputs against moto's server: a Kinesis stream fed with gzip CloudWatch
Logs documents from two accounts (as a CloudWatch Logs destination writes them), and flow log
files in an S3 bucket announced by S3 notifications, straight, through SQS and through
EventBridge. The Lambda events are built from what moto's APIs return, as Lambda builds them."""

import base64
import gzip
import json
import os
import subprocess
import uuid

from conftest import BIN, REGION, VPC_CIDRS, aws
from test_function import reject

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"


def document(owner, messages, first_id, kind="DATA_MESSAGE"):
    """A CloudWatch Logs document as a destination puts it into its stream: gzip JSON."""
    return gzip.compress(json.dumps({
        "messageType": kind, "owner": owner, "logGroup": "/vpc/flow-logs",
        "logStream": f"eni-{owner[:4]}-all", "subscriptionFilters": ["to-central"],
        "logEvents": [{"id": str(first_id + i), "timestamp": 1764195360000, "message": m}
                      for i, m in enumerate(messages)],
    }).encode())


def kinesis_event(moto, stream, payloads):
    """Puts `payloads` into a new stream, reads them back with GetRecords, and builds the
    Lambda event from what GetRecords returned."""
    kinesis = aws("kinesis", moto)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    for i, data in enumerate(payloads):
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey=f"key-{i}")
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert len(records) == len(payloads)
    arn = f"arn:aws:kinesis:{REGION}:999999999999:stream/{stream}"
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp()},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"{shard}:{r['SequenceNumber']}", "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::999999999999:role/fn", "awsRegion": REGION,
        "eventSourceARN": arn,
    } for r in records]}


def sources_in(messages):
    return sorted(m["MessageAttributes"]["source"]["Value"] for m in messages)


def accounts_in(messages):
    return sorted(m["MessageAttributes"]["account"]["Value"] for m in messages)


def test_a_kinesis_batch_from_two_accounts_alerts_and_names_its_corrupt_record(start_function, subscriber, moto):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    a = document(ACCOUNT_A, [reject("10.0.7.1").replace("210987654321", ACCOUNT_A)], 100)
    control = document(ACCOUNT_B, ["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."], 0,
                       kind="CONTROL_MESSAGE")
    corrupt = b"\x1f\x8b this was cut off"
    b = document(ACCOUNT_B, [reject("10.0.7.2", f"10.0.9.{h}").replace("210987654321", ACCOUNT_B)
                             for h in range(12)], 200)
    event = kinesis_event(moto, "flows-" + uuid.uuid4().hex[:6], [a, control, corrupt, b])
    corrupt_sequence = event["Records"][2]["kinesis"]["sequenceNumber"]

    kind, response, _ = runtime.invoke(event)
    assert kind == "response", response
    assert response == {"batchItemFailures": [{"itemIdentifier": corrupt_sequence}]}
    got = subscriber.receive(expected=2)
    assert sources_in(got) == ["10.0.7.1", "10.0.7.2"]
    assert accounts_in(got) == [ACCOUNT_A, ACCOUNT_B]
    assert [json.loads(p["Message"])["type"] for p in subscriber.receive_pages(expected=1)] == ["page"]

    # Lambda retries from the failed record on: the record after it brings nothing new.
    retry = {"Records": event["Records"][2:]}
    kind, response, _ = runtime.invoke(retry)
    assert response == {"batchItemFailures": [{"itemIdentifier": corrupt_sequence}]}
    assert subscriber.receive(expected=0, timeout=3) == []


def flow_log_file(sources, region=REGION, account=ACCOUNT_A):
    lines = [HEADER] + [reject(s).replace("210987654321", account) for s in sources]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def flow_log_key(account=ACCOUNT_A, region=REGION, name="a"):
    return (f"AWSLogs/{account}/vpcflowlogs/{region}/2026/11/27/"
            f"{account}_vpcflowlogs_{region}_fl-0123456789abcdef0_20261127T1000Z_{name}.log.gz")


def s3_record(bucket, key, size=100):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
            "eventTime": "2026-11-27T10:05:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AROAEXAMPLE:delivery"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "flow-logs",
                   "bucket": {"name": bucket, "ownerIdentity": {"principalId": "O"},
                              "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": size, "eTag": uuid.uuid4().hex, "sequencer": "0A"}}}


def eventbridge_event(bucket, key):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": ACCOUNT_A, "time": "2026-11-27T10:05:00Z", "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 100, "etag": uuid.uuid4().hex, "sequencer": "0B"},
                       "request-id": "R", "requester": "delivery.logs.amazonaws.com",
                       "reason": "PutObject"}}


def sqs_event(moto, messages):
    """Sends each body to a new queue, receives them, and builds the Lambda SQS event."""
    sqs = aws("sqs", moto)
    url = sqs.create_queue(QueueName="objects-" + uuid.uuid4().hex[:6])["QueueUrl"]
    for body in messages:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == len(messages)
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                         "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:999999999999:q",
                         "awsRegion": REGION} for m in received]}


def bucket_with(moto, objects):
    s3 = aws("s3", moto)
    bucket = "flow-logs-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def test_s3_objects_alert_whichever_way_their_notification_comes(start_function, subscriber, moto):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    direct, bridged, queued = (flow_log_key(name=n) for n in ("direct", "bridged", "queued"))
    west = flow_log_key(account=ACCOUNT_B, region="eu-west-1", name="west")
    bucket = bucket_with(moto, {
        direct: flow_log_file(["10.0.8.1"]),
        bridged: flow_log_file(["10.0.8.2"]),
        queued: flow_log_file(["10.0.8.3"]),
        west: flow_log_file(["10.0.8.4"], account=ACCOUNT_B),
        "notes/readme.txt": b"not a flow log, and not under AWSLogs/\n",
    })

    kind, summary, _ = runtime.invoke({"Records": [s3_record(bucket, direct)]})
    assert kind == "response" and summary["findings"] == 1, summary
    kind, summary, _ = runtime.invoke(eventbridge_event(bucket, bridged))
    assert kind == "response" and summary["findings"] == 1, summary
    kind, response, _ = runtime.invoke(sqs_event(moto, [{"Records": [s3_record(bucket, queued)]},
                                                        {"Records": [s3_record(bucket, west)]},
                                                        {"Service": "Amazon S3", "Event": "s3:TestEvent"}]))
    assert kind == "response" and response == {"batchItemFailures": []}, response
    # Objects outside the flow log layout are left alone.
    kind, summary, _ = runtime.invoke({"Records": [s3_record(bucket, "notes/readme.txt")]})
    assert kind == "response" and summary["records"] == 0, summary

    got = subscriber.receive(expected=4)
    assert sources_in(got) == ["10.0.8.1", "10.0.8.2", "10.0.8.3", "10.0.8.4"]
    by_source = {m["MessageAttributes"]["source"]["Value"]: m["Subject"] for m in got}
    # The account and region come from the object's key.
    assert by_source["10.0.8.4"].endswith(f"- {ACCOUNT_B} eu-west-1"), by_source
    assert by_source["10.0.8.1"].endswith(f"- {ACCOUNT_A} {REGION}"), by_source


def test_a_missing_or_foreign_object_fails_clearly_and_a_queue_retries_only_it(start_function, subscriber, moto):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    good, junk, parquet = flow_log_key(name="good"), flow_log_key(name="junk"), flow_log_key(name="p")
    parquet = parquet.replace(".log.gz", ".parquet")
    gone = flow_log_key(name="gone")
    bucket = bucket_with(moto, {good: flow_log_file(["10.0.9.1"]),
                                junk: gzip.compress(b"<html>this is not a flow log</html>\n"),
                                parquet: b"PAR1\x15\x04"})

    kind, body, _ = runtime.invoke({"Records": [s3_record(bucket, gone)]})
    assert kind == "error" and body["errorType"] == "VpcFlowAlert.ObjectError", body
    assert f"s3://{bucket}/{gone}" in body["errorMessage"] and "NoSuchKey" in body["errorMessage"], body
    kind, body, _ = runtime.invoke(eventbridge_event(bucket, junk))
    assert kind == "error" and "not a flow log: none of its 1 lines" in body["errorMessage"], body
    kind, body, _ = runtime.invoke({"Records": [s3_record(bucket, parquet)]})
    assert kind == "error" and "FileFormat=plain-text" in body["errorMessage"], body

    event = sqs_event(moto, [{"Records": [s3_record(bucket, good)]}, {"Records": [s3_record(bucket, gone)]},
                             "not an S3 notification"])
    ids = [r["messageId"] for r in event["Records"]]
    kind, response, _ = runtime.invoke(event)
    assert kind == "response", response
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(ids[1:])
    assert sources_in(subscriber.receive(expected=1)) == ["10.0.9.1"]


def test_an_object_cut_off_fails_its_message_after_the_other_objects_alert_once(start_function, subscriber, moto):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    whole = flow_log_file(["10.0.5.1"] * 3000)
    good, cut, after = flow_log_key(name="good"), flow_log_key(name="cut"), flow_log_key(name="after")
    bucket = bucket_with(moto, {good: flow_log_file(["10.0.5.2"]), cut: whole[:len(whole) * 2 // 3],
                                after: flow_log_file(["10.0.5.3"])})
    # One SQS message naming three objects, redelivered as SQS does after a failure: the
    # objects read whole, before the cut one and after it, alert once; the cut one fails the
    # message each time, naming it. What was read of it is not sent (a retry reads it again:
    # whole, if only the download broke off).
    records = [s3_record(bucket, good), s3_record(bucket, cut), s3_record(bucket, after)]
    event = sqs_event(moto, [{"Records": records}])
    for attempt in range(2):
        kind, response, _ = runtime.invoke(event)
        assert kind == "response", response
        assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        got = subscriber.receive(expected=2 if attempt == 0 else 0, timeout=10 if attempt == 0 else 3)
        assert sorted(sources_in(got)) == (["10.0.5.2", "10.0.5.3"] if attempt == 0 else []), got
    kind, body, _ = runtime.invoke({"Records": [s3_record(bucket, cut)]})
    assert kind == "error" and body["errorType"] == "VpcFlowAlert.ObjectError", body
    assert f"s3://{bucket}/{cut}: bad or truncated gzip data" in body["errorMessage"], body
    assert "cut off after" in body["errorMessage"], body


def test_check_reads_s3_urls_and_notification_files(tmp_path, moto):
    key = flow_log_key(name="check")
    west = flow_log_key(region="eu-west-1", name="west")
    bucket = bucket_with(moto, {key: flow_log_file(["10.0.6.1", "10.0.6.2"]), west: flow_log_file(["10.0.6.3"])})
    notification = tmp_path / "notification.json"
    notification.write_text(json.dumps({"Records": [s3_record(bucket, key), s3_record(bucket, west)]}))
    env = {**os.environ, "AWS_ENDPOINT_URL": moto, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    expected = {f"s3://{bucket}/{key}": {"10.0.6.1": REGION, "10.0.6.2": REGION},
                str(notification): {"10.0.6.1": REGION, "10.0.6.2": REGION, "10.0.6.3": "eu-west-1"}}
    for target, regions in expected.items():
        out = subprocess.run([str(BIN), "check", "--vpc-cidr", VPC_CIDRS, "--output", "json", target],
                             capture_output=True, text=True, env={**env, "AWS_REGION": "ap-south-1"})
        assert out.returncode == 0, out.stderr
        alerts = [json.loads(line) for line in out.stdout.splitlines()]
        # Each alert names its object's region, not the one check runs in.
        assert {a["source"]: a["region"] for a in alerts} == regions, out.stdout
    out = subprocess.run([str(BIN), "check", "--vpc-cidr", VPC_CIDRS, f"s3://{bucket}/missing.log.gz"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "NoSuchKey" in out.stderr, out.stderr
    assert out.stderr.count(f"s3://{bucket}/missing.log.gz") == 1, out.stderr

    # A partly uploaded object between whole ones, and a missing one: the alerts of all (what
    # was read of the cut one included) are written, then check fails naming the cut object
    # and the missing one.
    whole = flow_log_file(["10.0.6.4"] * 3000)
    cut, after = flow_log_key(name="cut"), flow_log_key(name="after")
    bucket = bucket_with(moto, {key: flow_log_file(["10.0.6.1"]), cut: whole[:len(whole) * 2 // 3],
                                after: flow_log_file(["10.0.6.5"])})
    gone = flow_log_key(name="gone")
    notification.write_text(json.dumps({"Records": [s3_record(bucket, key), s3_record(bucket, cut),
                                                    s3_record(bucket, gone), s3_record(bucket, after)]}))
    out = subprocess.run([str(BIN), "check", "--vpc-cidr", VPC_CIDRS, "--output", "json", str(notification)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stderr
    assert f"s3://{bucket}/{cut}: bad or truncated gzip data" in out.stderr, out.stderr
    # The missing object in a few words: the service's code and message, not its raw answer.
    also = f"; 2 other objects read whole; also s3://{bucket}/{gone}: cannot get the object: NoSuchKey: "
    assert "(cut off after" in out.stderr and also in out.stderr and "Response" not in out.stderr, out.stderr
    alerts = [json.loads(line) for line in out.stdout.splitlines()]
    assert {a["source"]: a["region"] for a in alerts} == {"10.0.6.1": REGION, "10.0.6.4": REGION,
                                                          "10.0.6.5": REGION}, out.stdout
    # Named alone, the object is the input: its name is said once.
    out = subprocess.run([str(BIN), "check", "--vpc-cidr", VPC_CIDRS, f"s3://{bucket}/{cut}"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stderr
    assert f"vpc-flow-alert: s3://{bucket}/{cut}: bad or truncated gzip data" in out.stderr, out.stderr
    assert out.stderr.count(f"s3://{bucket}/{cut}") == 2, out.stderr  # the report line, the error
