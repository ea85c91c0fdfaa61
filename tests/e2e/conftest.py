"""Real parts for the end-to-end tests, all on 127.0.0.1.

- moto's server: the SNS (and SQS) API; a queue subscribed to a topic is the subscriber.
- RuntimeApi: the Lambda Runtime API, served here, that the built binary polls for events,
  exactly as it does in AWS (lambda_runtime's own loop runs unchanged).
- FaultProxy: sits between the function and moto and answers some PublishBatch calls with
  throttling, server errors, a failed entry, or silence.
"""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VPC_FLOW_ALERT_BIN", ROOT / "target" / "debug" / "vpc-flow-alert"))
REGION = "us-east-1"
VPC_CIDRS = "10.0.0.0/16,2600:1f18:4a2b:9e00::/56"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def moto():
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/moto-api/")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def template_resource(name):
    """A resource of the deployment template, with CloudFormation's tags read as null."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)["Resources"][name]


@pytest.fixture
def state_table(moto):
    """A fresh incident table, created from the template's own definition."""
    props = template_resource("IncidentTable")["Properties"]
    ddb = aws("dynamodb", moto)
    name = "incidents-" + uuid.uuid4().hex[:8]
    ddb.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                     KeySchema=props["KeySchema"], BillingMode=props["BillingMode"],
                     SSESpecification={"Enabled": props["SSESpecification"]["SSEEnabled"]})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])
    return name


def aws(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


SCHEMA = json.loads((ROOT / "schema" / "message.schema.json").read_text())


def check_contract(body):
    """Fails unless a message body is what schema/message.schema.json promises."""
    import jsonschema

    jsonschema.validate(body, SCHEMA)


# The template's subscription filter policies: what email receives, and what a phone receives.
EMAIL_FILTER = template_resource("EmailSubscription")["Properties"]["FilterPolicy"]
SMS_FILTER = {"type": template_resource("SmsSubscription")["Properties"]["FilterPolicy"]["type"]}


class Subscriber:
    """A topic with two SQS queues subscribed to it through the template's filter policies:
    `receive` reads what the email subscription gets (one message per alert, digests),
    `receive_pages` what the phone gets (one page per invocation). Every message body received
    is checked against the JSON contract."""

    def __init__(self, endpoint):
        self.sns = aws("sns", endpoint)
        self.sqs = aws("sqs", endpoint)
        name = "alerts-" + uuid.uuid4().hex[:8]
        self.topic_arn = self.sns.create_topic(Name=name)["TopicArn"]
        self.queue_url = self._queue(name, EMAIL_FILTER)
        self.pages_url = self._queue(name + "-pages", SMS_FILTER)

    def _queue(self, name, filter_policy):
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn,
                           Attributes={"FilterPolicy": json.dumps(filter_policy),
                                       "FilterPolicyScope": "MessageAttributes"})
        return url

    def receive_pages(self, expected, timeout=10):
        return self.receive(expected, timeout, queue_url=self.pages_url)

    def receive(self, expected, timeout=10, queue_url=None):
        """The SNS envelopes in the queue; waits until `expected` arrived, then a little more
        to catch any extra message."""
        queue_url = queue_url or self.queue_url
        got = []
        end = time.time() + timeout
        while time.time() < end:
            wait = 1 if len(got) >= expected else 0
            resp = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            )
            batch = resp.get("Messages", [])
            for m in batch:
                envelope = json.loads(m["Body"])
                check_contract(json.loads(envelope["Message"]))
                got.append(envelope)
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            if len(got) >= expected and not batch:
                break
        return got


@pytest.fixture
def subscriber(moto):
    return Subscriber(moto)


class QuietServer(ThreadingHTTPServer):
    """Says nothing when a client goes away mid-connection (a function process killed at the
    end of a test or a measurement); any other error is printed as usual."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) for one function process."""

    def __init__(self):
        self.events = queue.Queue()
        self.results = {}
        self.done = threading.Condition()
        self.first_poll = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404)
                if api.first_poll is None:
                    api.first_poll = time.monotonic()
                request_id, payload, deadline_ms = api.events.get()
                self.reply(
                    200,
                    payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:111122223333:function:vpc-flow-alert",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    },
                )

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = self.path.split("/")
                # /2018-06-01/runtime/invocation/{id}/response|error, /2018-06-01/runtime/init/error
                if parts[3] == "invocation" and parts[5] in ("response", "error"):
                    with api.done:
                        api.results[parts[4]] = (parts[5], json.loads(body or b"null"), time.time())
                        api.done.notify_all()
                elif parts[3] == "init":
                    with api.done:
                        api.results["init"] = ("error", json.loads(body or b"null"), time.time())
                        api.done.notify_all()
                self.reply(202, b"{}", {"Content-Type": "application/json"})

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, payload, timeout_ms=30_000):
        """Delivers an event; returns ('response' | 'error', body, seconds before the deadline)."""
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000) + timeout_ms
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        self.events.put((request_id, payload, deadline_ms))
        with self.done:
            ok = self.done.wait_for(lambda: request_id in self.results, timeout=timeout_ms / 1000 + 30)
        assert ok, "the function returned nothing"
        kind, body, at = self.results[request_id]
        return kind, body, deadline_ms / 1000 - at

    def close(self):
        self.server.shutdown()


class FunctionProcess:
    """The built binary started as Lambda starts it."""

    def __init__(self, runtime, env, quiet=False):
        self.runtime = runtime
        self.started = time.monotonic()
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "AWS_LAMBDA_FUNCTION_NAME": "vpc-flow-alert",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "test",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/vpc-flow-alert",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "VPC_CIDRS": VPC_CIDRS,
            "ALERT_COOLDOWN_SECONDS": "0",
        }
        full_env.update({k: v for k, v in env.items() if v is not None})
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
        out = subprocess.DEVNULL if quiet else subprocess.PIPE
        self.proc = subprocess.Popen([str(BIN)], env=full_env, stdout=out, stderr=out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        return (out or b"").decode(), (err or b"").decode()


@pytest.fixture
def start_function():
    """start_function(env) -> (RuntimeApi, FunctionProcess); stopped after the test."""
    started = []

    def start(env):
        runtime = RuntimeApi()
        fn = FunctionProcess(runtime, env)
        started.append((runtime, fn))
        return runtime, fn

    yield start
    for runtime, fn in started:
        fn.stop()
        runtime.close()


class FaultProxy:
    """Forwards to moto, except the PublishBatch calls it is told to break, in order:
    'throttle', 'server-error', 'fail-last-entry', 'hang', 'drop' (close the connection without
    an answer) or 'forward'. Once `plan` is empty, `decide()` chooses (forward by default).
    DynamoDB calls follow `ddb_plan`, then `ddb_decide(target, body)`: 'throttle',
    'server-error', 'hang', 'commit-then-fail' (forward, then answer a server error as if the
    answer was lost) or 'forward'."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.plan = []
        self.decide = lambda: "forward"
        self.ddb_plan = []
        self.ddb_decide = lambda target, body: "forward"
        self.ddb_calls = []  # the X-Amz-Target of every DynamoDB call that reached the proxy
        self.batches = []  # the entry ids of every PublishBatch call that reached the proxy
        self.ec2_fault = None  # None, 'server-error' or 'hang' for every EC2 Describe call
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type="text/xml"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def forward(self, body):
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command
                )
                for k, v in self.headers.items():
                    if k.lower() not in ("host", "content-length"):
                        req.add_header(k, v)
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        return resp.status, resp.read(), resp.headers.get("Content-Type", "text/xml")
                except urllib.error.HTTPError as e:
                    return e.code, e.read(), e.headers.get("Content-Type", "text/xml")

            def dynamodb(self, body):
                target = self.headers["X-Amz-Target"]
                proxy.ddb_calls.append(target)
                action = proxy.ddb_plan.pop(0) if proxy.ddb_plan else proxy.ddb_decide(target, body)
                error = lambda status, kind: self.reply(status, json.dumps(
                    {"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": "injected"}).encode(),
                    "application/x-amz-json-1.0")
                if action == "throttle":
                    return error(400, "ThrottlingException")
                if action == "server-error":
                    return error(500, "InternalServerError")
                if action == "hang":
                    time.sleep(5)
                    return error(500, "InternalServerError")
                if action == "commit-then-fail":
                    self.forward(body)
                    return error(500, "InternalServerError")
                status, resp, ctype = self.forward(body)
                return self.reply(status, resp, ctype)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Amz-Target", "").startswith("DynamoDB_"):
                    return self.dynamodb(body)
                params = urllib.parse.parse_qsl(body.decode())
                if dict(params).get("Action", "").startswith("Describe") and proxy.ec2_fault:
                    if proxy.ec2_fault == "hang":
                        time.sleep(5)
                    return self.reply(503, error_xml("Receiver", "Unavailable", "injected"))
                if dict(params).get("Action") != "PublishBatch":
                    return self.reply(*self.forward(body)[:2])
                ids = [v for k, v in params if k.startswith("PublishBatchRequestEntries.member.") and k.endswith(".Id")]
                proxy.batches.append(ids)
                action = proxy.plan.pop(0) if proxy.plan else proxy.decide()
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "throttle":
                    return self.reply(400, error_xml("Sender", "Throttling", "Rate exceeded"))
                if action == "server-error":
                    return self.reply(503, error_xml("Receiver", "ServiceUnavailable", "Service is unavailable"))
                if action == "hang":
                    time.sleep(30)
                    return self.reply(503, b"")
                if action == "fail-last-entry":
                    dropped = ids[-1]
                    kept = drop_entry(params, len(ids))
                    status, resp, ctype = self.forward(urllib.parse.urlencode(kept).encode())
                    failed = (
                        f"<Failed><member><Id>{dropped}</Id><Code>InternalError</Code>"
                        f"<Message>injected</Message><SenderFault>false</SenderFault></member></Failed>"
                    ).encode()
                    resp = resp.replace(b"</PublishBatchResult>", failed + b"</PublishBatchResult>")
                    return self.reply(status, resp, ctype)
                status, resp, ctype = self.forward(body)
                return self.reply(status, resp, ctype)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def error_xml(kind, code, message):
    return (
        f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{kind}</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def drop_entry(params, n):
    """The PublishBatch parameters without entry number n (1-based, the last one)."""
    prefix = f"PublishBatchRequestEntries.member.{n}."
    return [(k, v) for k, v in params if not k.startswith(prefix)]


@pytest.fixture
def fault_proxy(moto):
    proxy = FaultProxy(moto)
    yield proxy
    proxy.close()
