"""The SQS client of an AWSSession: one client for every request, parameter checks kept.

AWSSession's clients skip botocore's client-side parameter check (README,
"Configuration"): sqsw checks what it builds from a user's input with botocore's
validator and sends its receives, deletes and visibility changes unchecked. These
tests hold what a user can see of that on LocalStack: a handler registered on
``sqs.sqs_client`` still sees every request of a worker (there is no second
client), a bad parameter still fails before anything is sent, and
``parameter_validation=True`` brings botocore's own check back to direct calls.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from sqsw_core import AWSSession, SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import IdleShutdown
from tests.helpers import expect_counts


def test_a_handler_on_the_client_sees_every_request_of_a_worker(ls_env: SQSEnv) -> None:
    create_standard_queue(ls_env, "seen")
    queue = ls_env.queue("seen")
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    ls_env.sqs_client.meta.events.register("before-call.sqs.*", count)
    ran: list[int] = []
    queue.connect_processor("job", lambda n: ran.append(n))
    with queue.add_batch():
        for n in range(25):
            queue.add_job("job", n=n)
    queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=2, handle_signals=False)
    assert sorted(ran) == list(range(25))
    assert calls["SendMessageBatch"] == 3
    assert calls["ReceiveMessage"] >= 3
    assert calls["DeleteMessageBatch"] >= 3  # every ack went through the same client
    expect_counts(queue, (0, 0, 0), "after the run")


def test_a_bad_parameter_fails_before_anything_is_sent(ls_env: SQSEnv) -> None:
    create_standard_queue(ls_env, "bad")
    queue = ls_env.queue("bad")
    with pytest.raises(ParamValidationError, match="MessageBody"):
        queue.call("send_message", MessageBody=5)
    with pytest.raises(ParamValidationError, match="AttributeNames"):
        queue.call("get_queue_attributes", AttributeNames="All")
    expect_counts(queue, (0, 0, 0), "after the refused send")


@pytest.mark.parametrize("validation", [False, True])
def test_parameter_validation_decides_for_direct_calls(endpoint: str, validation: bool) -> None:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        parameter_validation=validation,
    )
    env = SQSEnv(session, queue_prefix=f"pv{int(validation)}_")
    create_standard_queue(env, "direct")
    queue = env.queue("direct")
    try:
        # botocore refuses it in the client; without that check, SQS refuses it.
        expected = ParamValidationError if validation else ClientError
        with pytest.raises(expected):
            env.sqs_client.send_message(QueueUrl=queue.url, MessageBody=5)
        expect_counts(queue, (0, 0, 0), "after the refused send")
    finally:
        env.sqs_client.delete_queue(QueueUrl=queue.url)
