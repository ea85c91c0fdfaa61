"""Soak: thousands of invocations of the built binary under a Runtime API, against moto's SNS,
while faults are injected. `make soak` (SOAK_INVOCATIONS, default 2000).

Lambda's own behaviour is emulated: a failed invocation is retried twice, then the event goes
to the failure destination. At the end every alert must be in the subscriber's queue or belong
to an event in the failure destination; the script counts both and exits 1 if one is missing.

Phases (by share of the invocations):
  0-15% clean; 15-30% 40% of calls throttled; 30-45% 30% of calls answer 503;
  45-47% SNS unreachable (connections closed unanswered); 47-70% half the batches lose their
  last entry; 70-80% every other invocation arrives 300 ms before its deadline; 80-100% clean.
"""

import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402
from conftest import FaultProxy, FunctionProcess, RuntimeApi, Subscriber  # noqa: E402
from test_function import make_event  # noqa: E402

N = int(os.environ.get("SOAK_INVOCATIONS", "2000"))
BIN = os.environ.get("VPC_FLOW_ALERT_BIN", str(conftest.ROOT / "target" / "release" / "vpc-flow-alert"))


def phase(i):
    share = i / N
    for end, name in [(0.15, "clean"), (0.30, "throttle"), (0.45, "server-error"), (0.47, "unreachable"),
                      (0.70, "fail-entry"), (0.80, "deadline"), (1.01, "clean")]:
        if share < end:
            return name
    return "clean"


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    conftest.BIN = Path(BIN)
    rng = random.Random(7)
    moto_port = conftest.free_port()
    moto = conftest.subprocess.Popen(
        [conftest.shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server",
         "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=conftest.subprocess.DEVNULL, stderr=conftest.subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{moto_port}"
    conftest.wait_for_http(endpoint + "/moto-api/")
    subscriber = Subscriber(endpoint)
    proxy = FaultProxy(endpoint)
    runtime = RuntimeApi()
    fn = FunctionProcess(runtime, {"SNS_TOPIC_ARN": subscriber.topic_arn, "AWS_ENDPOINT_URL": proxy.url,
                                   "AWS_LAMBDA_LOG_FORMAT": "TEXT", "AWS_LAMBDA_LOG_LEVEL": "WARN",
                                   "VPC_CIDRS": "10.0.0.0/8"},
                         quiet=True)
    current = {"phase": "clean"}

    def decide():
        p = current["phase"]
        if p == "throttle" and rng.random() < 0.4:
            return "throttle"
        if p == "server-error" and rng.random() < 0.3:
            return "server-error"
        if p == "unreachable":
            return "drop"
        if p == "fail-entry" and rng.random() < 0.5:
            return "fail-last-entry"
        return "forward"

    proxy.decide = decide

    # The subscriber reads its queue all along, as a real one would (moto slows down as a queue
    # grows, so reading it only at the end would take longer than the run).
    received, duplicates, stop = set(), [0], threading.Event()

    def drain(until_idle=False):
        while not stop.is_set() or until_idle:
            batch = subscriber.sqs.receive_message(
                QueueUrl=subscriber.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for m in batch:
                source = conftest.json.loads(m["Body"])["MessageAttributes"]["source"]["Value"]
                duplicates[0] += source in received
                received.add(source)
                subscriber.sqs.delete_message(QueueUrl=subscriber.queue_url, ReceiptHandle=m["ReceiptHandle"])
            if until_idle and not batch:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    expected, failed_events, outcomes = {}, set(), {"succeeded": 0, "errors": 0, "dead-lettered": 0}
    rss_start = None
    started = time.time()
    for i in range(N):
        current["phase"] = phase(i)
        sources = [f"10.{i // 256 % 256}.{i % 256}.{j + 1}" for j in range(1 + i % 3)]
        expected[i] = sources
        event = make_event([f"2 210987654321 eni-1 {s} 10.200.0.1 40000 22 6 1 40 1764195240 1764195300 REJECT OK"
                            for s in sources], first_id=i * 10)
        for attempt in range(3):
            timeout = 300 if current["phase"] == "deadline" and attempt == 0 and i % 2 == 0 else 10_000
            kind, _, _ = runtime.invoke(event, timeout_ms=timeout)
            if kind == "response":
                outcomes["succeeded"] += 1
                break
            outcomes["errors"] += 1
        else:
            failed_events.add(i)
            outcomes["dead-lettered"] += 1
        if i == 100:
            rss_start = rss_kib(fn.proc.pid)
    elapsed = time.time() - started
    rss_end = rss_kib(fn.proc.pid)

    stop.set()
    reader.join()
    drain(until_idle=True)
    duplicates = duplicates[0]
    delivered = sum(1 for i, s in expected.items() for src in s if src in received)
    in_failure = sum(len(s) for i, s in expected.items() if i in failed_events)
    missing = [src for i, s in expected.items() if i not in failed_events for src in s if src not in received]
    alerts = sum(len(s) for s in expected.values())
    print(f"invocations: {N} events in {elapsed:.0f} s; {outcomes['succeeded']} succeeded, "
          f"{outcomes['errors']} failed attempts retried or dead-lettered, {outcomes['dead-lettered']} events dead-lettered")
    print(f"alerts: {alerts} expected; {delivered} in the subscriber's queue; "
          f"{in_failure} belong to dead-lettered events; {len(missing)} missing; {duplicates} duplicates")
    print(f"PublishBatch calls through the fault proxy: {len(proxy.batches)}")
    print(f"function memory (VmRSS): {rss_start} KiB after 100 invocations, {rss_end} KiB after {N}")
    fn.stop()
    runtime.close()
    proxy.close()
    moto.terminate()
    if missing:
        print("MISSING:", missing[:20])
        sys.exit(1)


if __name__ == "__main__":
    main()
