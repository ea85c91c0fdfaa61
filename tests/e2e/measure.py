"""Measurements for the README, not tests: `make measure` (uses the release binary).

- init: time from process start to the function's first request for an event (the Runtime
  API served here, as in tests), median of 20 starts, with DRY_RUN and with the SNS client.
- memory: peak resident memory (/usr/bin/time -v) of `check` on the largest event CloudWatch
  Logs sends (10,000 records) and on a 2,000,000-record gzip S3 file, streamed.
- sources: time and peak memory of `check --output json` on a 2,000,000-record gzip S3 file
  (40% internal rejects, 20% internet rejects, 40% accepted, 400 interfaces) with 10 and with
  83,000 distinct internal sources, and of the function (dry run) reading the same file from
  moto's S3 for an object-created notification.
- jobs: `check` on 20 gzip S3 files of 200,000 records, then on 20 where the 1st, 3rd and 5th
  hold 2,000,000, with `--jobs 1` and with one job per core (best of three each), and whether
  the outputs are the same. Standard output goes to a file.
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
from conftest import ROOT, RuntimeApi, aws, free_port, wait_for_http  # noqa: E402

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


def s3_record(i, sources):
    k = i % 10
    if k < 4:
        s = 1 + (i // 10 * 4 + k) % sources
        src, action = f"10.{s >> 16 & 255}.{s >> 8 & 255}.{s & 255}", "REJECT"
    elif k < 6:
        src, action = f"198.51.100.{i % 250}", "REJECT"
    else:
        src, action = f"10.0.3.{i % 250}", "ACCEPT"
    return (f"2 123456789012 eni-{i % 400:017x} {src} 10.1.{i % 7}.{i % 250} {30000 + i % 30000} "
            f"{(i * 7) % 1024} 6 {i % 20 + 1} {(i % 20 + 1) * 60} 1764195240 1764195300 {action} OK")


HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"


def s3_file(path, records, sources, offset=0):
    with gzip.open(path, "wt", compresslevel=6) as f:
        f.write(HEADER)
        for i in range(offset, offset + records):
            f.write(s3_record(i, sources) + "\n")


def timed(args):
    """Seconds, peak KiB and stdout (without the clock's fields) of one run."""
    # Standard output goes to a file, as `check ... > alerts.json` would: a pipe read here would
    # time this script decoding tens of MB on the cores the runs share.
    with tempfile.TemporaryFile("w+") as stdout:
        start = time.monotonic()
        out = subprocess.run(["/usr/bin/time", "-v", str(BIN), *args], stdout=stdout, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "VPC_CIDRS": "10.0.0.0/8"})
        seconds = time.monotonic() - start
        stdout.seek(0)
        lines = stdout.read().splitlines()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    alerts = []
    for line in lines:
        alert = json.loads(line)
        for key in ("id", "incident", "detected_at", "opened_at"):
            alert.pop(key)
        alerts.append(alert)
    return seconds, kb, alerts


def peak_kb(args):
    out = subprocess.run(["/usr/bin/time", "-v", str(BIN), *args], capture_output=True, text=True)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return int(match.group(1)), out.returncode


def function_reads_object(path):
    """The function (release binary, dry run) invoked with an S3 notification for `path`,
    uploaded to moto's S3: seconds, the process's peak resident memory (KiB) and its answer."""
    import shutil
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    moto = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    api = RuntimeApi()
    try:
        wait_for_http(endpoint + "/moto-api/")
        s3 = aws("s3", endpoint)
        s3.create_bucket(Bucket="flow-logs")
        key = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/11/27/123456789012_vpcflowlogs_us-east-1_fl-1_20261127T1000Z_a.log.gz"
        s3.upload_file(str(path), "flow-logs", key)
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               "AWS_LAMBDA_RUNTIME_API": api.address, **ENV, "VPC_CIDRS": "10.0.0.0/8",
               "DRY_RUN": "true", "AWS_ENDPOINT_URL": endpoint}
        proc = subprocess.Popen([str(BIN)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        event = {"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-27T10:05:00.000Z",
                              "userIdentity": {"principalId": "X"}, "requestParameters": {"sourceIPAddress": "1"},
                              "s3": {"bucket": {"name": "flow-logs"}, "object": {"key": key, "eTag": "e"}}}]}
        start = time.monotonic()
        kind, body, _ = api.invoke(event, timeout_ms=120_000)
        seconds = time.monotonic() - start
        status = Path(f"/proc/{proc.pid}/status").read_text()
        kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        proc.kill()
        proc.wait()
        return seconds, kb, (kind, body)
    finally:
        api.close()
        moto.terminate()
        moto.wait(timeout=10)


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
        for sources in (10, 83_000):
            path = Path(tmp, f"sources-{sources}.log.gz")
            s3_file(path, 2_000_000, sources)
            seconds, kb, alerts = timed(["check", "--output", "json", str(path)])
            print(f"S3 file, 2,000,000 records, {sources} internal sources: {seconds:.2f} s, "
                  f"peak {kb / 1024:.1f} MiB, {len(alerts)} alerts")
            seconds, kb, (kind, body) = function_reads_object(path)
            print(f"  the function (dry run) reading it from moto's S3 for a notification: {seconds:.2f} s, "
                  f"peak {kb / 1024:.1f} MiB, {kind}: findings {body.get('findings')}, alerts {body.get('alerts')}")
        files = []
        for n in range(20):
            path = Path(tmp, f"part-{n:02}.log.gz")
            s3_file(path, 200_000, 5_000, offset=n * 200_000)
            files.append(str(path))
        # Then three of them ten times as large, first, third and fifth: a thread given every
        # other input would get all three.
        large = [str(Path(tmp, f"sources-{n}.log.gz")) for n in (10, 83_000, 10)]
        uneven = [large[0], files[0], large[1], files[1], large[2], *files[2:17]]
        cores = os.cpu_count()
        for name, inputs in (("20 S3 files of 200,000 records", files),
                             ("20 S3 files, the 1st, 3rd and 5th of 2,000,000 records", uneven)):
            runs = {}
            for jobs in (1, cores):
                best = min((timed(["check", "--output", "json", "--jobs", str(jobs), *inputs]) for _ in range(3)),
                           key=lambda r: r[0])
                runs[jobs] = best
                print(f"{name}, --jobs {jobs}: {best[0]:.2f} s, peak {best[1] / 1024:.1f} MiB")
            print(f"  --jobs {cores} is {runs[1][0] / runs[cores][0]:.2f}x faster; "
                  f"same output: {runs[1][2] == runs[cores][2]}")


if __name__ == "__main__":
    main()
