"""Receives, deletes and visibility changes sent without botocore's per-call pipeline.

A worker on a client sqsw made sends its hot requests through
``sqsw_core.direct_requests``. These tests hold it to botocore's own client on
LocalStack: the same responses for the same messages, the same exception
classes, the same connection errors (through a proxy that can drop the
connection), signatures that verify, and the client's ``before-call`` /
``after-call`` handlers still called. LocalStack does not check signatures,
so the proxy records the bytes on the wire and the test verifies them with
botocore's SigV4 implementation.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from sqsw_core import AWSSession, SQSEnv, create_standard_queue
from sqsw_core.exceptions import QueueNotFoundError, SQSCallError
from sqsw_core.retries import RetryPolicy
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_core.sqs_calls import receive_messages
from tests.helpers import expect_counts, receive_counts
from tests.localstack_server import REGION

ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": "héllo"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
    "kind": {"DataType": "String.custom", "StringValue": "x"},
}


class RecordingProxy:
    """A TCP proxy to LocalStack that records what clients send and can cut connections."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = bytearray()
        self.refuse = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Close every open connection (the next request on one fails)."""
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()

    def requests(self) -> list[tuple[str, dict[str, str], bytes]]:
        """(target operation, headers, body) of each request recorded so far."""
        with self._lock:
            data = bytes(self.sent)
        found = []
        while data:
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            length = int(headers.get("Content-Length", "0"))
            body, data = rest[:length], rest[length:]
            found.append((headers.get("X-Amz-Target", ""), headers, body))
        return found

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(endpoint: str) -> Iterator[RecordingProxy]:
    running = RecordingProxy(endpoint)
    yield running
    running.close()


def env_on(url: str, **session_options: Any) -> SQSEnv:
    session = AWSSession(
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        **session_options,
    )
    return SQSEnv(session, queue_prefix=f"d{uuid.uuid4().hex[:8]}_", retry=RetryPolicy(2, 0.01))


@pytest.fixture
def direct_env(endpoint: str) -> Iterator[SQSEnv]:
    env = env_on(endpoint)
    yield env
    for name in env.get_all_known_queues():
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url(name))


def send_samples(env: SQSEnv, name: str, count: int) -> str:
    url = env.get_queue_url(name)
    for n in range(count):
        env.sqs_client.send_message(
            QueueUrl=url, MessageBody=f"body {n} ✓", MessageAttributes=ATTRIBUTES
        )
    return url


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def test_receives_answer_as_botocore_does(direct_env: SQSEnv) -> None:
    create_standard_queue(direct_env, "same", visibility_timeout=30)
    url = send_samples(direct_env, "same", 3)
    api = direct_env.api
    assert api.direct is not None
    params = {
        "QueueUrl": url,
        "MaxNumberOfMessages": 10,
        "AttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
        "VisibilityTimeout": 0,
    }
    through_botocore = without_metadata(direct_env.sqs_client.receive_message(**params))
    api.call("receive_message", "same", **params)  # the first one teaches the template
    assert "ReceiveMessage" in api.direct._templates
    direct = api.call("receive_message", "same", **params)
    assert len(direct["Messages"]) == len(through_botocore["Messages"]) == 3

    def comparable(message: dict[str, Any]) -> dict[str, Any]:
        volatile = ("ReceiptHandle", "Attributes")
        return {k: v for k, v in message.items() if k not in volatile}

    by_id = {m["MessageId"]: comparable(m) for m in through_botocore["Messages"]}
    for message in direct["Messages"]:
        assert comparable(message) == by_id[message["MessageId"]]
        assert message["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\xfe\xff"
        assert message["Attributes"]["ApproximateReceiveCount"] == "3"


def test_deletes_and_visibility_changes_report_as_botocore_does(direct_env: SQSEnv) -> None:
    create_standard_queue(direct_env, "batch", visibility_timeout=30)
    url = send_samples(direct_env, "batch", 2)
    api = direct_env.api
    received = api.call("receive_message", "batch", QueueUrl=url, MaxNumberOfMessages=10)
    handles = [m["ReceiptHandle"] for m in received["Messages"]]
    bad = {"Id": "bad", "ReceiptHandle": "not-a-handle"}
    for _ in range(2):  # the first call of each teaches the template
        changes = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 60}
            for i, h in enumerate(handles)
        ]
        changed = api.call(
            "change_message_visibility_batch", "batch", QueueUrl=url, Entries=[*changes, bad]
        )
        assert sorted(e["Id"] for e in changed["Successful"]) == ["0", "1"]
        assert [f["Id"] for f in changed["Failed"]] == ["bad"]
    assert set(api.direct._templates) >= {"ReceiveMessage", "ChangeMessageVisibilityBatch"}
    entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    api.call("delete_message_batch", "batch", QueueUrl=url, Entries=[bad])  # teaches
    deleted = api.call("delete_message_batch", "batch", QueueUrl=url, Entries=[*entries, bad])
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["0", "1"]
    assert [f["Id"] for f in deleted["Failed"]] == ["bad"]
    expect_counts(direct_env.queue("batch"), (0, 0, 0), "after the direct deletes")


def test_errors_are_botocores_exception_classes(direct_env: SQSEnv) -> None:
    create_standard_queue(direct_env, "errors")
    url = direct_env.get_queue_url("errors")
    api = direct_env.api
    api.call("receive_message", "errors", QueueUrl=url)  # teaches the template
    with pytest.raises(direct_env.sqs_client.exceptions.QueueDoesNotExist) as raised:
        assert api.direct is not None
        api.direct.call("receive_message", QueueUrl=url + "-missing")
    assert raised.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(QueueNotFoundError, match="errors-missing"):
        api.call("receive_message", "errors-missing", QueueUrl=url + "-missing")
    api.call(
        "delete_message_batch", "errors", QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": "x"}]
    )
    with pytest.raises(direct_env.sqs_client.exceptions.EmptyBatchRequest):
        api.direct.call("delete_message_batch", QueueUrl=url, Entries=[])
    with pytest.raises(SQSCallError, match="EmptyBatchRequest"):
        api.call("delete_message_batch", "errors", QueueUrl=url, Entries=[])


@pytest.mark.parametrize("token", [None, "a-session-token"])
def test_signatures_verify_and_headers_match_botocores(
    proxy: RecordingProxy, token: str | None
) -> None:
    env = env_on(proxy.url, aws_session_token=token)
    try:
        create_standard_queue(env, "signed")
        queue = env.queue("signed")
        url = send_samples(env, "signed", 2)
        for _ in range(3):  # botocore's request first, then direct ones
            receive_messages(queue, 0, visibility_timeout=0)
        assert env.api.direct is not None and "ReceiveMessage" in env.api.direct._templates
        assert env.api.direct._templates["ReceiveMessage"].signs_here  # sqsw's SigV4 signer
        receives = [r for r in proxy.requests() if r[0] == "AmazonSQS.ReceiveMessage"]
        assert len(receives) == 3
        per_request = {"X-Amz-Date", "Authorization", "amz-sdk-invocation-id", "Content-Length"}
        first_headers = set(receives[0][1])
        first_signed = _signed_headers(receives[0][1])
        for _, headers, body in receives:
            assert set(headers) == first_headers, "a direct request carries botocore's headers"
            assert _signed_headers(headers) == first_signed, "and signs the same ones"
            assert _verifies(headers, body), "the signature verifies"
        assert per_request <= first_headers
        if token is not None:
            assert "x-amz-security-token" in first_signed
            assert {headers["X-Amz-Security-Token"] for _, headers, _ in receives} == {token}
        ids = {headers["amz-sdk-invocation-id"] for _, headers, _ in receives}
        assert len(ids) == 3
        assert url.endswith("signed")
    finally:
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url("signed"))


def test_the_signer_agrees_with_botocores_sigv4() -> None:
    """request_signing.SigV4Signer on awkward header values, checked by botocore."""
    from sqsw_core.request_signing import SigV4Signer, host_header, signable

    class Signer:  # the attributes of botocore's RequestSigner the signer reads
        signature_version = "v4"
        region_name = REGION
        signing_name = "sqs"
        _credentials = Credentials("test", "test", "token/with+chars==")

    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "  a   b  "}
    headers["User-Agent"] = "not signed"
    body = json.dumps({"QueueUrl": "http://h/1/q", "Entries": ["é"]}).encode()
    SigV4Signer(Signer()).sign("127.0.0.1:4566", headers, body)
    headers["Host"] = "127.0.0.1:4566"
    assert "user-agent" not in _signed_headers(headers)
    assert _verifies(headers, body, Signer._credentials)
    assert host_header("https://sqs.eu-west-1.amazonaws.com/") == "sqs.eu-west-1.amazonaws.com"
    assert host_header("http://[::1]:4566/") == "[::1]:4566"
    assert signable("http://h:1/", {}, Signer())
    assert not signable("http://h:1/prefix/", {}, Signer())
    assert not signable("http://h:1/", {"signing": {"region": "us-west-2"}}, Signer())
    assert not signable("http://h:1/", {"auth_type": "v4a"}, Signer())


def _signed_headers(headers: dict[str, str]) -> list[str]:
    return headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def _verifies(headers: dict[str, str], body: bytes, credentials: Credentials | None = None) -> bool:
    """Whether the request's SigV4 signature is right for its headers and body."""
    authorization = headers["Authorization"]
    signed = _signed_headers(headers)
    request = AWSRequest(
        method="POST",
        url=f"http://{headers['Host']}/",
        headers={k: v for k, v in headers.items() if k.lower() in signed},
        data=body,
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(credentials or Credentials("test", "test"), "sqs", REGION)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    return authorization.endswith(f"Signature={signature}")


def test_a_dropped_connection_is_botocores_error_and_retried(proxy: RecordingProxy) -> None:
    env = env_on(proxy.url)
    try:
        create_standard_queue(env, "dropped")
        queue = env.queue("dropped")
        receive_messages(queue, 0)  # teaches the template
        proxy.cut()
        proxy.refuse = True  # the retry cannot connect either
        assert env.api.direct is not None
        url = env.get_queue_url("dropped")
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
            env.api.direct.call("receive_message", QueueUrl=url)
        with pytest.raises(SQSCallError, match="failed after 2 attempts"):
            receive_messages(queue, 0)
        proxy.refuse = False
        assert receive_messages(queue, 0) == []  # a new connection serves the next one
    finally:
        proxy.refuse = False
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url("dropped"))


def test_a_worker_goes_direct_and_client_handlers_still_see_every_call(
    direct_env: SQSEnv,
) -> None:
    create_standard_queue(direct_env, "worker", visibility_timeout=30)
    queue = direct_env.queue("worker")
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    serialized: dict[str, int] = {}
    events = direct_env.sqs_client.meta.events

    def count(into: dict[str, int]) -> Any:
        def handler(model: Any, **_: Any) -> None:
            into[model.name] = into.get(model.name, 0) + 1

        return handler

    events.register("before-call.sqs.*", count(before))
    events.register("after-call.sqs.*", count(after))
    events.register("before-parameter-build.sqs.*", count(serialized))
    ran: list[int] = []
    queue.connect_processor("job", lambda n: ran.append(n))
    with queue.add_batch():
        for n in range(200):
            queue.add_job("job", n=n)
    queue.process_queue(
        IdleShutdown(1), wait_seconds=1, concurrency=2, pollers=2, handle_signals=False
    )
    assert sorted(ran) == list(range(200))
    assert before["ReceiveMessage"] == after["ReceiveMessage"] >= 20
    assert before["DeleteMessageBatch"] == after["DeleteMessageBatch"] >= 20
    # botocore built only the first calls (one per thread making them at once, before
    # the template was kept: 2 pollers; 2 job threads and the acker); the rest went direct.
    assert 1 <= serialized["ReceiveMessage"] <= 2
    assert 1 <= serialized["DeleteMessageBatch"] <= 3
    expect_counts(queue, (0, 0, 0), "after the run")
    assert receive_counts(queue) == {}


def test_direct_requests_false_sends_everything_through_botocore(endpoint: str) -> None:
    env = env_on(endpoint, direct_requests=False)
    try:
        create_standard_queue(env, "plain")
        assert env.api.direct is None
        queue = env.queue("plain")
        queue.connect_processor("job", lambda n: None)
        queue.add_job("job", n=1)
        queue.process_queue(IdleShutdown(1), wait_seconds=1, handle_signals=False)
        expect_counts(queue, (0, 0, 0), "after the run")
    finally:
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url("plain"))


def test_a_client_given_by_the_user_is_used_as_it_is(endpoint: str) -> None:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    env = SQSEnv(sqs_client=session.client("sqs"), queue_prefix=f"u{uuid.uuid4().hex[:8]}_")
    assert env.api.direct is None


def test_instrumented_botocore_gets_every_call(endpoint: str) -> None:
    """OpenTelemetry's botocore instrumentation wraps the client's calls: sqsw then
    leaves every call to the client, so each one is traced."""
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = BotocoreInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    env = env_on(endpoint)
    try:
        create_standard_queue(env, "traced")
        assert env.api.direct is None
        queue = env.queue("traced")
        ran: list[int] = []
        queue.connect_processor("job", lambda n: ran.append(n))
        with queue.add_batch():
            for n in range(25):
                queue.add_job("job", n=n)
        queue.process_queue(IdleShutdown(1), wait_seconds=1, handle_signals=False)
        assert sorted(ran) == list(range(25))
        names = [span.name for span in exporter.get_finished_spans()]
        assert names.count("SQS.ReceiveMessage") >= 3
        assert names.count("SQS.DeleteMessageBatch") >= 3
    finally:
        instrumentor.uninstrument()
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url("traced"))
    assert env_on(endpoint).api.direct is not None, "direct again once uninstrumented"


def test_instrumenting_after_the_first_calls_still_traces_every_call(
    direct_env: SQSEnv,
) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    create_standard_queue(direct_env, "late")
    queue = direct_env.queue("late")
    for _ in range(2):
        receive_messages(queue, 0)
    assert direct_env.api.direct is not None and direct_env.api.direct._templates
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = BotocoreInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        for _ in range(3):
            receive_messages(queue, 0)
    finally:
        instrumentor.uninstrument()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("SQS.ReceiveMessage") == 3


def test_a_response_that_is_not_json_answers_as_botocore_does() -> None:
    """A server that answers 200 with something else than SQS's JSON (a proxy's page):
    botocore's parser reads it as an answer without members; so does the direct path."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = [b'{"Messages": []}', b"<html>proxy login</html>"]

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = answers[0] if len(answers) == 1 else answers.pop(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = env_on(f"http://127.0.0.1:{server.server_address[1]}")
        api = env.api
        url = f"http://127.0.0.1:{server.server_address[1]}/000000000000/q"
        assert api.call("receive_message", "q", QueueUrl=url)["Messages"] == []
        assert api.direct is not None and "ReceiveMessage" in api.direct._templates
        assert api.call("receive_message", "q", QueueUrl=url) == {}
        through_botocore = env.sqs_client.receive_message(QueueUrl=url)
        assert without_metadata(through_botocore) == {}
    finally:
        server.shutdown()
