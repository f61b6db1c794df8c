"""Enqueueing from asyncio code: delay_async, add_job_async, add_batch_async / batch_async.

The SQS calls run on sending threads: the event loop keeps running while they
are on their way (a ticker task counts its turns), the job carries the sending
task's context, batches go 10 per SendMessageBatch call, wrong arguments fail
before anything is sent. Every test checks what reached the queue.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_fifo_queue, create_standard_queue
from tests.helpers import InterceptedClient, expect_counts, receive_all


class CountingClient(InterceptedClient):
    """Counts the API calls, and the threads they were made on."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.calls: collections.Counter[str] = collections.Counter()
        self.threads: set[str] = set()  # where sends were made
        self.lock = threading.Lock()

    def intercept(self, operation: str, target: Any, params: dict[str, Any]) -> Any:
        with self.lock:
            self.calls[operation] += 1
            if operation.startswith("SendMessage"):
                self.threads.add(threading.current_thread().name)
        return target(**params)


def counting_env(sqs: SQSEnv) -> tuple[SQSEnv, CountingClient]:
    client = CountingClient(sqs.session.client("sqs"))
    env = SQSEnv(sqs.session, queue_prefix=sqs.queue_prefix, sqs_client=client)
    return env, client


def jobs_in(queue: Any, expected: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job name, arguments, context) of each visible message (left visible)."""
    out = []
    for m in receive_all(queue, expected=expected):
        attributes = m["MessageAttributes"]
        out.append(
            (
                attributes["JobName"]["StringValue"],
                json.loads(m["Body"]),
                json.loads(attributes["JobContext"]["StringValue"]),
            )
        )
    return out


def test_delay_async_sends_off_the_event_loop(sqs: SQSEnv) -> None:
    env, client = counting_env(sqs)
    create_standard_queue(env, "emails")
    queue = env.queue("emails")

    @queue.processor("send_email")
    def send_email(to: str, n: int) -> None:
        pass

    async def main() -> tuple[list[str | None], int]:
        turns = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal turns
            while not stop.is_set():
                turns += 1
                await asyncio.sleep(0)

        tick = asyncio.create_task(ticker())
        ids = await asyncio.gather(
            *(send_email.delay_async(f"u{n}@example.com", n=n) for n in range(60))
        )
        stop.set()
        await tick
        return ids, turns

    ids, turns = asyncio.run(main())
    assert all(ids) and len(set(ids)) == 60  # one message id each
    assert turns > 1  # the loop ran other tasks while the sends were on their way
    assert client.calls["SendMessage"] == 60
    assert client.threads and all(t.startswith("sqsw-send") for t in client.threads)
    sent = jobs_in(queue, 60)
    assert sorted(args["n"] for _, args, _ in sent) == list(range(60))
    assert {name for name, _, _ in sent} == {"send_email"}
    expect_counts(queue, (60, 0, 0), "after the sends")


def test_each_task_sends_its_own_context(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "ctx")
    queue = sqs.queue("ctx")

    @queue.processor("audit")
    def audit(n: int) -> None:
        pass

    async def send(n: int) -> None:
        with sqs.context(request=f"r{n}"):
            await asyncio.sleep(0.01 * (n % 3))  # interleave the tasks
            await audit.delay_async(n=n)

    async def main() -> None:
        await asyncio.gather(*(send(n) for n in range(12)))

    asyncio.run(main())
    for _, args, context in jobs_in(queue, 12):
        assert context == {"request": f"r{args['n']}"}


def test_batch_async_sends_ten_per_call_from_many_tasks(sqs: SQSEnv) -> None:
    env, client = counting_env(sqs)
    create_standard_queue(env, "bulk")
    queue = env.queue("bulk")

    @queue.processor("index")
    def index(doc: int) -> None:
        pass

    async def main() -> list[str]:
        async with index.batch_async() as batch:
            results = await asyncio.gather(*(index.delay_async(doc=n) for n in range(25)))
            assert results == [None] * 25  # buffered
        return batch.message_ids

    message_ids = asyncio.run(main())
    assert len(message_ids) == 25
    assert client.calls["SendMessageBatch"] == 3 and client.calls["SendMessage"] == 0
    assert sorted(args["doc"] for _, args, _ in jobs_in(queue, 25)) == list(range(25))


def test_a_wrong_call_fails_before_anything_is_sent(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "strict")
    queue = sqs.queue("strict")

    @queue.processor("charge")
    def charge(order: int, cents: int) -> None:
        pass

    async def main() -> None:
        with pytest.raises(TypeError, match="missing a required argument: 'cents'"):
            await charge.delay_async(order=1)
        with pytest.raises(RuntimeError, match="has ended"):
            async with queue.add_batch_async() as batch:
                await charge.delay_async(order=2, cents=5)
            await batch.add({"MessageBody": "late"}, "charge")

    asyncio.run(main())
    assert [args for _, args, _ in jobs_in(queue, 1)] == [{"order": 2, "cents": 5}]


def test_fifo_group_and_deduplication_through_add_job_async(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "orders.fifo")
    queue = sqs.queue("orders.fifo")

    async def main() -> None:
        async with queue.add_batch_async():
            for n in range(4):
                await queue.add_job_async(
                    "ship", _group_id="customer-7", _deduplication_id=f"o{n}", n=n
                )
        await queue.add_job_async("ship", _group_id="customer-7", _deduplication_id="o0", n=0)

    asyncio.run(main())
    sent = jobs_in(queue, 4)
    assert [args["n"] for _, args, _ in sent] == [0, 1, 2, 3]  # the duplicate was dropped
    expect_counts(queue, (4, 0, 0), "after the sends")


def test_readme_fastapi_example_enqueues_from_a_request_handler(tmp_path: Any) -> None:
    """The README's FastAPI example as written, driven by FastAPI's test client."""
    import re
    from pathlib import Path

    from fastapi.testclient import TestClient

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Enqueueing from async code") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None and "FastAPI" in code.group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README-fastapi", "exec"), namespace)
    with TestClient(namespace["app"]) as client:
        responses = [client.post(f"/signup/{n}") for n in (7, 8)]
    assert [r.status_code for r in responses] == [200, 200]
    assert all(r.json()["queued"] for r in responses)
    sent = jobs_in(namespace["queue"], 2)
    assert sorted((args["user_id"], context["request_path"]) for _, args, context in sent) == [
        (7, "/signup/7"),
        (8, "/signup/8"),
    ]
