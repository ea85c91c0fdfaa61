"""Faults on the way to SNS: retried when they pass, an invocation error when they do not.

The function talks to moto through FaultProxy, which breaks the PublishBatch calls it is told
to break. Whatever happens, an alert is either in the subscriber's queue or its invocation
failed (so Lambda would retry the event, then keep it in the failure destination)."""

import time

from conftest import free_port
from test_function import make_event, reject


def start(start_function, subscriber, endpoint, **env):
    return start_function({"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": endpoint, **env})


def test_throttling_is_retried_until_the_alert_is_published(start_function, subscriber, fault_proxy):
    fault_proxy.plan = ["throttle", "throttle", "throttle", "throttle"]
    runtime, _ = start(start_function, subscriber, fault_proxy.url)
    kind, summary, _ = runtime.invoke(make_event([reject("10.0.1.7")]))
    assert kind == "response", summary
    assert summary["published"] == 2, "the alert and its page"
    assert len(fault_proxy.batches) == 5
    assert len(subscriber.receive(expected=1)) == 1


def test_server_errors_are_retried_until_the_alert_is_published(start_function, subscriber, fault_proxy):
    fault_proxy.plan = ["server-error", "server-error"]
    runtime, _ = start(start_function, subscriber, fault_proxy.url)
    kind, summary, _ = runtime.invoke(make_event([reject("10.0.1.7"), reject("10.0.1.8")]))
    assert kind == "response" and summary["published"] == 3
    assert len(subscriber.receive(expected=2)) == 2


def test_only_the_failed_entry_of_a_batch_is_sent_again(start_function, subscriber, fault_proxy):
    fault_proxy.plan = ["fail-last-entry"]
    runtime, _ = start(start_function, subscriber, fault_proxy.url)
    kind, summary, _ = runtime.invoke(make_event([reject(f"10.0.1.{i}") for i in range(1, 4)]))
    assert kind == "response" and summary["published"] == 4
    assert fault_proxy.batches == [["m0", "m1", "m2", "m3"], ["m0"]]
    got = subscriber.receive(expected=3)
    assert sorted(m["MessageAttributes"]["source"]["Value"] for m in got) == ["10.0.1.1", "10.0.1.2", "10.0.1.3"]


def test_sns_failing_persistently_fails_the_invocation(start_function, subscriber, fault_proxy):
    fault_proxy.plan = ["server-error"] * 100
    runtime, _ = start(start_function, subscriber, fault_proxy.url)
    kind, body, _ = runtime.invoke(make_event([reject("10.0.1.7")]))
    assert kind == "error"
    assert body["errorType"] == "VpcFlowAlert.PublishError"
    assert "2 of 2 alert messages could not be published" in body["errorMessage"]
    assert subscriber.receive(expected=0, timeout=2) == []
    # When SNS is back, Lambda's retry of the same event delivers the alert.
    fault_proxy.plan = []
    kind, summary, _ = runtime.invoke(make_event([reject("10.0.1.7")]))
    assert kind == "response" and summary["published"] == 2
    assert len(subscriber.receive(expected=1)) == 1


def test_sns_unreachable_fails_the_invocation_before_the_deadline(start_function, subscriber):
    closed = f"http://127.0.0.1:{free_port()}"
    runtime, _ = start(start_function, subscriber, closed)
    kind, body, left = runtime.invoke(make_event([reject("10.0.1.7")]), timeout_ms=20_000)
    assert kind == "error" and "could not be published" in body["errorMessage"]
    assert "cannot reach SNS" in body["errorMessage"], body
    assert left > 0


def test_a_hanging_sns_fails_the_invocation_before_the_deadline(start_function, subscriber, fault_proxy):
    fault_proxy.plan = ["hang"] * 10
    runtime, _ = start(start_function, subscriber, fault_proxy.url)
    started = time.time()
    kind, body, left = runtime.invoke(make_event([reject("10.0.1.7")]), timeout_ms=3_000)
    assert kind == "error" and "could not be published" in body["errorMessage"], body
    assert left > 0, f"answered {-left:.2f}s after the deadline"
    assert time.time() - started < 3


def test_a_deadline_too_close_is_an_error_not_a_timeout(start_function, subscriber, moto):
    runtime, _ = start(start_function, subscriber, moto)
    kind, body, left = runtime.invoke(make_event([reject("10.0.1.7")]), timeout_ms=300)
    assert kind == "error"
    assert "deadline" in body["errorMessage"], body
    assert left > 0
    assert subscriber.receive(expected=0, timeout=2) == []
