"""Incidents across deliveries, shared by function instances through a DynamoDB table (moto's),
with deliveries shaped as CloudWatch Logs sends them: one log stream per payload, rejects
recorded at each target's interface, extractedFields on every log event."""

import json
import threading
import time

from conftest import ROOT, free_port
from test_function import make_event, reject

SOURCE_SWEEP = "10.0.4.9"


def event_file(name):
    return (ROOT / "events" / f"{name}.json").read_bytes()


def start(start_function, subscriber, moto, state_table, **env):
    return start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": moto,
                           "STATE_TABLE": state_table, "ALERT_COOLDOWN_SECONDS": "3600", **env})


def subjects(messages, source=None):
    return [m["Subject"] for m in messages
            if source is None or m["MessageAttributes"]["source"]["Value"] == source]


def severities(messages, source):
    return [m["MessageAttributes"]["severity"]["Value"] for m in messages
            if m["MessageAttributes"]["source"]["Value"] == source]


def invoke_all(pairs):
    """Invokes every (runtime, payload) at once; returns the results in order."""
    results = [None] * len(pairs)

    def run(i, runtime, payload):
        results[i] = runtime.invoke(payload)

    threads = [threading.Thread(target=run, args=(i, r, p)) for i, (r, p) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_instances_taking_an_interleaved_sweep_send_one_high(start_function, subscriber, moto, state_table):
    a, _ = start(start_function, subscriber, moto, state_table)
    b, _ = start(start_function, subscriber, moto, state_table)
    deliveries = [event_file(f"sweep-{n:02d}") for n in range(1, 13)]
    results = []
    for i in range(0, 12, 2):  # both instances busy at once, a pair at a time
        results += invoke_all([(a, deliveries[i]), (b, deliveries[i + 1])])
    assert all(kind == "response" for kind, _, _ in results), results
    assert sum(summary["state_errors"] for _, summary, _ in results) == 0
    got = subscriber.receive(expected=2)
    levels = severities(got, SOURCE_SWEEP)
    assert levels.count("high") == 1, subjects(got)
    assert levels.count("medium") <= 1, subjects(got)
    assert len(got) == len(levels)
    high = next(m for m in got if m["MessageAttributes"]["severity"]["Value"] == "high")
    body = json.loads(high["Message"])
    assert body["destinations"]["count"] >= 10 and body["kind"] == "host-sweep"
    assert len(body["log_streams"]) >= 10, "the incident knows where the records came from"


def test_a_scan_split_over_two_deliveries_to_two_instances_sends_medium_then_high(
        start_function, subscriber, moto, state_table):
    a, _ = start(start_function, subscriber, moto, state_table)
    b, _ = start(start_function, subscriber, moto, state_table)
    assert a.invoke(event_file("scan-split-01"))[1]["published"] == 2
    assert b.invoke(event_file("scan-split-02"))[1]["published"] == 2
    got = subscriber.receive(expected=2)
    assert subjects(got) == [
        "[MEDIUM] Probe from 10.0.3.7: 9 ports on 1 host - 210987654321 us-east-1",
        "[HIGH, escalated] Port scan from 10.0.3.7: 25 ports on 1 host - 210987654321 us-east-1",
    ]
    assert json.loads(got[1]["Message"])["records"] == 25


def test_repeats_after_the_high_are_quiet_until_the_reminder(start_function, subscriber, moto, state_table):
    runtime, _ = start(start_function, subscriber, moto, state_table, ALERT_COOLDOWN_SECONDS="3")
    scan = [reject("10.0.3.7", "10.0.1.5", port) for port in range(20, 32)]
    assert runtime.invoke(make_event(scan, first_id=0))[1]["published"] == 2
    for n in (1, 2):
        summary = runtime.invoke(make_event(scan[:3], first_id=1000 * n))[1]
        assert (summary["published"], summary["suppressed"]) == (0, 1)
    time.sleep(3.2)
    summary = runtime.invoke(make_event(scan[:3], first_id=9000))[1]
    assert summary["published"] == 2
    got = subscriber.receive(expected=2)
    assert [s.split(" Port scan")[0] for s in subjects(got)] == ["[HIGH]", "[HIGH, ongoing]"]
    reminder = json.loads(got[1]["Message"])
    assert reminder["reason"] == "reminder" and reminder["records"] == 12 + 3 * 3, "the totals so far"


def test_blocked_responses_are_low_and_never_high(start_function, subscriber, moto, state_table):
    runtime, _ = start(start_function, subscriber, moto, state_table)
    assert runtime.invoke(event_file("blocked-responses"))[1]["published"] == 2
    more = [f"2 210987654321 eni-0f1e2d3c4b5a69788 10.0.1.20 203.0.113.{i} 443 {50000 + i} 6 3 180 "
            f"1764195300 1764195360 REJECT OK" for i in range(30)]
    summary = runtime.invoke(make_event(more, first_id=500, stream="eni-0f1e2d3c4b5a69788-all"))[1]
    assert summary["published"] == 0
    got = subscriber.receive(expected=1)
    assert severities(got, "10.0.1.20") == ["low"]
    body = json.loads(got[0]["Message"])
    assert body["kind"] == "blocked-responses" and body["destinations"]["count"] == 0


def test_a_claimed_message_whose_publish_failed_is_sent_by_the_retry_on_another_instance(
        start_function, subscriber, moto, state_table, fault_proxy):
    fault_proxy.plan = ["server-error"] * 100
    a, _ = start(start_function, subscriber, fault_proxy.url, state_table)
    b, _ = start(start_function, subscriber, moto, state_table)
    first = make_event([reject("10.0.1.7")], first_id=0)
    kind, body, _ = a.invoke(first)
    assert kind == "error" and body["errorType"] == "VpcFlowAlert.PublishError"
    # Another delivery of the same source: the message is claimed, by the failed batch.
    assert b.invoke(make_event([reject("10.0.1.7", "10.0.9.8")], first_id=100))[1]["published"] == 0
    # Lambda retries the failed event (same log event ids), here on the other instance.
    kind, summary, _ = b.invoke(first)
    assert kind == "response" and summary["published"] == 2
    got = subscriber.receive(expected=1)
    assert severities(got, "10.0.1.7") == ["medium"]


def test_dynamodb_throttling_and_server_errors_never_drop_an_alert(
        start_function, subscriber, moto, state_table, fault_proxy):
    for fault in ("throttle", "server-error"):
        fault_proxy.ddb_decide = lambda *_, fault=fault: fault
        runtime, _ = start(start_function, subscriber, moto, state_table,
                           AWS_ENDPOINT_URL_DYNAMODB=fault_proxy.url)
        source = "10.0.2.1" if fault == "throttle" else "10.0.2.2"
        kind, summary, _ = runtime.invoke(make_event([reject(source)], first_id=0))
        assert kind == "response", summary
        assert summary["published"] == 2 and summary["state_errors"] >= 1, summary
        assert severities(subscriber.receive(expected=1), source) == ["medium"]
    assert len(fault_proxy.ddb_calls) >= 2


def test_a_claim_that_landed_without_its_answer_is_still_ours(
        start_function, subscriber, moto, state_table, fault_proxy):
    lost_once = []

    def decide(target, body):
        # The first claim reaches the table, but its answer is lost; the SDK sends it again.
        if b"owner_" in body and not lost_once:
            lost_once.append(target)
            return "commit-then-fail"
        return "forward"

    fault_proxy.ddb_decide = decide
    runtime, _ = start(start_function, subscriber, moto, state_table, AWS_ENDPOINT_URL_DYNAMODB=fault_proxy.url)
    kind, summary, _ = runtime.invoke(make_event([reject("10.0.2.4")]))
    assert lost_once, "the fault was injected"
    assert kind == "response" and summary["published"] == 2 and summary["state_errors"] == 0, summary
    assert severities(subscriber.receive(expected=1), "10.0.2.4") == ["medium"]


def test_an_unreachable_table_never_drops_an_alert(start_function, subscriber, moto, state_table):
    closed = f"http://127.0.0.1:{free_port()}"
    runtime, fn = start(start_function, subscriber, moto, state_table, AWS_ENDPOINT_URL_DYNAMODB=closed)
    kind, summary, left = runtime.invoke(make_event([reject("10.0.2.3")]), timeout_ms=20_000)
    assert kind == "response" and summary["published"] == 2 and summary["state_errors"] == 1
    assert left > 10, "the fallback did not wait for the whole deadline"
    assert severities(subscriber.receive(expected=1), "10.0.2.3") == ["medium"]
    out, _ = fn.stop()
    assert "state table unavailable" in out


def test_calls_per_invocation_are_one_per_source_plus_one_per_claim(start_function, subscriber, moto, state_table):
    runtime, fn = start(start_function, subscriber, moto, state_table, MAX_ALERTS_PER_INVOCATION="100")
    # 10,000 records from 10 sources (1,000 records each, to 10 hosts on 10 ports). Ten, not
    # a hundred: moto serves each call on a thread of one Python process, so concurrent calls
    # share one core; the function's 32 at once waited close to the client's one-second
    # timeout on a slow machine.
    records = [reject(f"10.0.10.{s + 1}", f"10.0.99.{r % 10}", 1000 + r // 100)
               for s in range(10) for r in range(1000)]
    first = runtime.invoke(make_event(records, first_id=0))[1]
    assert (first["records"], first["sources"], first["alerts"]) == (10_000, 10, 10)
    assert first["state_calls"] == 20, f"10 updates and 10 claims: {first}"
    again = runtime.invoke(make_event(records, first_id=100_000))[1]
    assert (again["alerts"], again["state_calls"]) == (0, 10), f"the same incidents, updates only: {again}"
    out, _ = fn.stop()
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert [m["StateCalls"] for m in metrics] == [20, 10]
