"""The built binary as a Lambda function: the real runtime loop, a real SNS API, a subscriber."""

import base64
import gzip
import json
import os
import subprocess

from conftest import BIN, REGION, ROOT, VPC_CIDRS

SUMMARY_KEYS = {"records", "malformed", "rejects", "findings", "skipped_data", "sources", "alerts", "published",
                "suppressed", "digested", "state_errors", "state_calls", "enrich_errors",
                "failed_items"}
# What differs between two runs of the same input: when the incident opened.
TIMING_KEYS = ("incident", "id", "opened_at", "detected_at")


def event_file(name):
    return (ROOT / "events" / f"{name}.json").read_bytes()


# The names the default space-delimited filter pattern gives the fields (extractedFields).
V2_FIELDS = ["version", "account_id", "interface_id", "srcaddr", "dstaddr", "srcport", "dstport", "protocol",
             "packets", "bytes", "start", "end", "action", "log_status"]


def make_event(messages, first_id=0, owner="210987654321", stream="eni-0a1b2c3d4e5f60718-all"):
    """One delivery as production sends it: one log stream, extractedFields on every event."""
    document = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": "/vpc/flow-logs",
        "logStream": stream,
        "subscriptionFilters": ["rejects"],
        "logEvents": [
            {"id": str(first_id + i), "timestamp": 1764195360000, "message": m,
             "extractedFields": dict(zip(V2_FIELDS, m.split()))}
            for i, m in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()
    return {"awslogs": {"data": data}}


def reject(source, dest="10.0.9.9", port=22):
    return f"2 210987654321 eni-0a1b2c3d4e5f60718 {source} {dest} 40000 {port} 6 1 40 1764195240 1764195300 REJECT OK"


def check_json(*names, env=None):
    """What `check --output json` prints for sample events, given in this order."""
    out = subprocess.run(
        [str(BIN), "check", "--vpc-cidr", VPC_CIDRS, "--output", "json",
         *[str(ROOT / "events" / f"{name}.json") for name in names]],
        capture_output=True, check=True, text=True, env={**os.environ, "AWS_REGION": REGION, **(env or {})},
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def untimed(alert):
    return {k: v for k, v in alert.items() if k not in TIMING_KEYS}


def test_alerts_reach_the_subscriber_as_check_shows_them(subscriber, moto, start_function):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    kind, summary, _ = runtime.invoke(event_file("port-scan"))
    assert kind == "response", summary
    assert set(summary) == SUMMARY_KEYS
    assert summary == {"records": 26, "malformed": 0, "rejects": 25, "findings": 25, "skipped_data": 0,
                       "sources": 1, "alerts": 1,
                       "published": 2, "suppressed": 0, "digested": 0, "state_errors": 0, "state_calls": 0,
                       "enrich_errors": 0, "failed_items": 0}
    kind, summary, _ = runtime.invoke(event_file("internal-reject"))
    assert summary["published"] == 2

    got = subscriber.receive(expected=2)
    assert len(got) == 2
    scan, internal = got
    assert scan["Subject"] == "[HIGH] Port scan from 10.0.3.7: 25 ports on 1 host - 210987654321 us-east-1"
    assert untimed(json.loads(scan["Message"])) == untimed(check_json("port-scan")[0])
    assert untimed(json.loads(internal["Message"])) == untimed(check_json("internal-reject")[0])
    attributes = {k: v["Value"] for k, v in scan["MessageAttributes"].items()}
    assert attributes == {"type": "alert", "severity": "high", "kind": "port-scan", "source": "10.0.3.7",
                          "account": "210987654321"}
    assert all(v["Type"] == "String" for v in scan["MessageAttributes"].values())
    for message in got:
        assert len(message["Subject"]) < 100
        assert all(32 <= ord(c) <= 126 for c in message["Subject"])


def test_email_gets_the_report_and_the_phone_one_transactional_text(subscriber, moto, start_function):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    runtime.invoke(event_file("host-sweep"))
    import urllib.request

    data = json.load(urllib.request.urlopen(moto + "/moto-api/data.json"))
    sent = [n for t in data["sns"]["Topic"] if t["arn"] == subscriber.topic_arn for n in t["sent_notifications"]]
    assert len(sent) == 2, "the alert and the page"
    structure = json.loads(sent[0][1])
    assert set(structure) == {"default", "email", "sms"}
    assert "WHAT TO DO NEXT" in structure["email"] and "10.0.4.9" in structure["email"]
    [email] = subscriber.receive(expected=1)
    assert email["MessageAttributes"]["type"]["Value"] == "alert"
    [page] = subscriber.receive_pages(expected=1)
    attributes = {k: v["Value"] for k, v in page["MessageAttributes"].items()}
    assert attributes["AWS.SNS.SMS.SMSType"] == "Transactional" and attributes["type"] == "page"
    text = json.loads(page["Message"])["text"]
    assert text.startswith("HIGH: Host sweep from 10.0.4.9: port 445 (smb) on 12 hosts"), text
    assert len("VPC ALERT> " + text) <= 160


def test_a_storm_of_25_high_alerts_sends_one_text(subscriber, moto, start_function):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    sweeps = [reject(f"10.0.2.{s}", f"10.0.9.{h}") for s in range(1, 26) for h in range(10)]
    kind, summary, _ = runtime.invoke(make_event(sweeps))
    assert kind == "response" and summary["alerts"] == 25
    pages = subscriber.receive_pages(expected=1)
    assert len(pages) == 1
    text = json.loads(pages[0]["Message"])["text"]
    assert text.endswith(", +24 more") and len("VPC ALERT> " + text) <= 160, text


def test_alerts_beyond_the_cap_arrive_as_one_digest(subscriber, moto, start_function):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    event = make_event([reject(f"10.0.1.{i}") for i in range(1, 26)])
    kind, summary, _ = runtime.invoke(event)
    assert kind == "response", summary
    assert (summary["alerts"], summary["published"], summary["digested"]) == (25, 12, 15)
    got = subscriber.receive(expected=11)
    assert len(got) == 11
    digests = [m for m in got if m["MessageAttributes"]["source"]["Value"] == "digest"]
    assert len(digests) == 1
    assert digests[0]["Subject"] == "[MEDIUM] 15 more sources sent rejected traffic (digest, 210987654321)"
    assert json.loads(digests[0]["Message"])["alerts"] == 15


def test_the_page_of_thousands_of_alerts_fits_in_one_sns_message(subscriber, moto, start_function):
    # 9,000 ids would make a page of about 300 KB; SNS (and moto) refuse more than 256 KB.
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    sources = [f"10.0.{30 + i // 250}.{i % 250 + 1}" for i in range(9_000)]
    kind, summary, _ = runtime.invoke(make_event([reject(s) for s in sources]))
    assert kind == "response", summary
    assert (summary["alerts"], summary["published"]) == (9_000, 12)
    [page] = subscriber.receive_pages(expected=1)
    body = json.loads(page["Message"])
    assert body["alert_count"] == 9_000 and len(body["alerts"]) == 100
    assert body["text"].endswith(", +8999 more"), body["text"]


def test_a_broken_event_fails_the_invocation_with_the_cause(start_function, subscriber, moto):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    kind, body, _ = runtime.invoke({"awslogs": {"data": "this is not base64!"}})
    assert kind == "error"
    assert body["errorType"] == "VpcFlowAlert.DecodeError"
    assert "`awslogs.data` is not valid base64" in body["errorMessage"]
    kind, body, _ = runtime.invoke({"Records": []})
    assert kind == "error" and "neither a CloudWatch Logs" in body["errorMessage"]
    # The instance keeps serving after a failed invocation.
    kind, summary, _ = runtime.invoke(event_file("control-message"))
    assert kind == "response" and summary == dict.fromkeys(SUMMARY_KEYS, 0)


def test_skipdata_records_are_counted_as_a_monitoring_gap(subscriber, moto, start_function):
    runtime, fn = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    skipped = "2 210987654321 eni-0a1b2c3d4e5f60718 - - - - - - - 1764195240 1764195300 - SKIPDATA"
    kind, summary, _ = runtime.invoke(make_event([skipped, skipped, reject("10.0.1.7")]))
    assert kind == "response" and summary["skipped_data"] == 2 and summary["published"] == 2
    out, _ = fn.stop()
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert metrics[0]["SkippedData"] == 2


def test_internet_rejects_publish_nothing(subscriber, moto, start_function):
    runtime, _ = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    kind, summary, _ = runtime.invoke(event_file("internet-only"))
    assert kind == "response" and summary["rejects"] == 3 and summary["published"] == 0
    assert subscriber.receive(expected=0, timeout=2) == []


def test_a_retried_event_is_not_sent_twice_and_repeats_of_a_reported_incident_are_quiet(subscriber, moto, start_function):
    runtime, _ = start_function({
        "SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto, "ALERT_COOLDOWN_SECONDS": "900",
    })
    event = make_event([reject("10.0.1.7")])
    assert runtime.invoke(event)[1]["published"] == 2
    again = runtime.invoke(event)[1]
    assert (again["published"], again["suppressed"]) == (0, 0), "the same log event ids: already sent"
    later = runtime.invoke(make_event([reject("10.0.1.7")], first_id=1000))[1]
    assert (later["published"], later["suppressed"]) == (0, 1), "new records of the same source: its incident was reported, no reminder due yet"
    assert len(subscriber.receive(expected=1, timeout=3)) == 1


def test_logs_are_json_with_one_summary_line_and_one_metrics_line(subscriber, moto, start_function):
    runtime, fn = start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto})
    payload = event_file("port-scan")
    runtime.invoke(payload)
    out, _ = fn.stop()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    metrics = [line for line in lines if "_aws" in line]
    assert len(metrics) == 1
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VpcFlowAlert"
    assert (metrics[0]["Records"], metrics[0]["Findings"], metrics[0]["AlertsPublished"]) == (26, 25, 2)
    summaries = [line for line in lines if line.get("fields", {}).get("message") == "invocation done"]
    assert len(summaries) == 1 and summaries[0]["fields"]["published"] == 2
    data = json.loads(payload)["awslogs"]["data"]
    assert data[:40] not in out, "the payload is not logged"


def test_dry_run_logs_instead_of_publishing(subscriber, moto, start_function):
    runtime, fn = start_function({"DRY_RUN": "true", "AWS_ENDPOINT_URL": moto})
    kind, summary, _ = runtime.invoke(event_file("port-scan"))
    assert kind == "response" and summary["alerts"] == 1 and summary["published"] == 0
    out, _ = fn.stop()
    assert "[HIGH] Port scan from 10.0.3.7: 25 ports" in out


def test_a_bad_configuration_fails_the_start_naming_the_variable(start_function):
    _, fn = start_function({"VPC_CIDRS": "10.0.0.0/33", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:a"})
    assert fn.proc.wait(timeout=10) != 0
    out, err = fn.stop()
    assert 'VPC_CIDRS="10.0.0.0/33"' in out + err


def test_check_publish_sends_local_files_to_the_topic(subscriber, moto):
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
           "VPC_CIDRS": VPC_CIDRS, "SNS_TOPIC_ARN": subscriber.topic_arn}
    out = subprocess.run([str(BIN), "check", "--publish", "--output", "json",
                          str(ROOT / "events" / "port-scan.json"), str(ROOT / "events" / "ipv6.json")],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "published 4 messages" in out.stderr
    got = subscriber.receive(expected=2)
    assert sorted(json.loads(m["Message"])["source"] for m in got) == ["10.0.3.7", "2600:1f18:4a2b:9e01::1c"]


def test_check_publish_sends_the_first_alerts_a_digest_of_the_rest_and_a_page(subscriber, moto, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
           "VPC_CIDRS": VPC_CIDRS, "SNS_TOPIC_ARN": subscriber.topic_arn, "MAX_ALERTS_PER_INVOCATION": "2"}
    # Five sources, the busier first in the order: 10.0.1.5 sent five rejects, 10.0.1.1 one.
    rejects = [reject(f"10.0.1.{s}", port=1000 + n) for s in range(1, 6) for n in range(s)]
    path = tmp_path / "five.json"
    path.write_text(json.dumps(make_event(rejects)))
    out = subprocess.run([str(BIN), "check", "--publish", "--output", "json", str(path)],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "published 4 messages" in out.stderr
    got = subscriber.receive(expected=3)
    alerts = sorted(json.loads(m["Message"])["source"] for m in got
                    if m["MessageAttributes"]["type"]["Value"] == "alert")
    assert alerts == ["10.0.1.4", "10.0.1.5"]
    [digest] = [json.loads(m["Message"]) for m in got if m["MessageAttributes"]["type"]["Value"] == "digest"]
    assert digest["alerts"] == 3
    assert [a["source"] for a in digest["listed"]] == ["10.0.1.3", "10.0.1.2", "10.0.1.1"]
    [page] = subscriber.receive_pages(expected=1)
    page = json.loads(page["Message"])
    assert page["alert_count"] == 5 and page["text"].endswith(", +4 more"), page
