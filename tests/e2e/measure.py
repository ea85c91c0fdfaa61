"""Measurements for the README, not tests: `make measure` (uses the release binary).

- init: time from process start to the function's first request for an event (the Runtime
  API served here, as in tests), median of 20 starts, with DRY_RUN and with the SNS client.
- memory: peak resident memory (/usr/bin/time -v) of `check` on the largest event CloudWatch
  Logs sends (10,000 records) and on a 2,000,000-record gzip S3 file, streamed.
"""

import base64
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ROOT, RuntimeApi  # noqa: E402

BIN = Path(os.environ.get("VPC_FLOW_ALERT_BIN", ROOT / "target" / "release" / "vpc-flow-alert"))
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "vpc-flow-alert",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_STREAM_NAME": "measure",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/vpc-flow-alert",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "VPC_CIDRS": "10.0.0.0/16",
}


def init_ms(extra, runs=20):
    samples = []
    for _ in range(runs):
        api = RuntimeApi()
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               "AWS_LAMBDA_RUNTIME_API": api.address, **ENV, **extra}
        start = time.monotonic()
        proc = subprocess.Popen([str(BIN)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while api.first_poll is None:
            time.sleep(0.0005)
        samples.append((api.first_poll - start) * 1000)
        proc.kill()
        proc.wait()
        api.close()
    return statistics.median(samples), min(samples), max(samples)


def record(i):
    src = f"10.0.{i % 5}.{i % 10 + 10}" if i % 10 == 0 else f"198.51.100.{i % 250}"
    action = "REJECT" if i % 3 == 0 else "ACCEPT"
    return (f"2 123456789012 eni-0a1b2c3d4e5f60718 {src} 10.0.{i % 7}.{i % 250} {30000 + i % 30000} "
            f"{i % 1024} 6 {i % 20 + 1} {(i % 20 + 1) * 60} 1764195240 1764195300 {action} OK")


def peak_kb(args):
    out = subprocess.run(["/usr/bin/time", "-v", str(BIN), *args], capture_output=True, text=True)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return int(match.group(1)), out.returncode


def main():
    size = BIN.stat().st_size
    print(f"binary: {BIN.name} {size / 1e6:.1f} MB")
    print("init, dry run (no SNS client): median %.1f ms (min %.1f, max %.1f)" % init_ms({"DRY_RUN": "true"}))
    print("init, with the SNS client:     median %.1f ms (min %.1f, max %.1f)" % init_ms(
        {"SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts"}))
    with tempfile.TemporaryDirectory() as tmp:
        doc = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g", "logStream": "s",
               "subscriptionFilters": ["f"],
               "logEvents": [{"id": f"{i:056}", "timestamp": 1764195360000, "message": record(i)}
                             for i in range(10_000)]}
        event = Path(tmp, "event.json")
        event.write_text(json.dumps({"awslogs": {"data": base64.b64encode(
            gzip.compress(json.dumps(doc).encode())).decode()}}))
        kb, rc = peak_kb(["check", "--vpc-cidr", "10.0.0.0/16", "--output", "json", str(event)])
        print(f"peak memory, 10,000-record event ({event.stat().st_size / 1e6:.2f} MB): {kb / 1024:.1f} MiB (exit {rc})")
        s3 = Path(tmp, "flows.log.gz")
        with gzip.open(s3, "wt", compresslevel=6) as f:
            f.write("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n")
            for i in range(2_000_000):
                f.write(record(i) + "\n")
        kb, rc = peak_kb(["check", "--vpc-cidr", "10.0.0.0/16", "--output", "json", str(s3)])
        print(f"peak memory, 2,000,000-record S3 file ({s3.stat().st_size / 1e6:.1f} MB gzip): {kb / 1024:.1f} MiB (exit {rc})")


if __name__ == "__main__":
    main()
