"""How long the dashboard's overview takes to render 200 queues, on LocalStack.

    .venv/bin/python benchmarks/dashboard_overview.py [--queues 200] [--repeat 5] [--latency 10]
                                                       [--endpoint URL]

Creates ``--queues`` queues (half of them dead-letter queues of the other half,
a few messages in each work queue), then renders the overview page (``GET /``
through the dashboard's whole ASGI app: listing, attributes of every queue,
dead-letter links, oldest ages, rates, charts, HTML) ``--repeat`` times. The
baseline, measured in the same run, is fetching the same attributes one queue
after the other, as a loop over ``get_queue_attributes`` would. Target: under
1 s for 200 queues. LocalStack answers in about a millisecond, where AWS takes
several: the second round adds ``--latency`` ms to every call, which is where
fetching concurrently pays. Uses ``--endpoint`` (or ``SQSW_TEST_ENDPOINT``) when given,
else starts LocalStack itself (scripts/localstack.py); the queues are deleted
at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from _baseline import load_localstack
from starlette.testclient import TestClient

from sqsw_core import AWSSession, SQSEnv, create_standard_queue
from sqsw_core.queue_management import get_queue_attributes
from sqsw_dashboard import Dashboard, DashboardOptions, create_app
from sqsw_dashboard.queue_listing import fetch_queues, list_queue_urls, parallel

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}


def create_queues(env: SQSEnv, count: int) -> None:
    pairs = count // 2

    def make(i: int) -> None:
        create_standard_queue(env, f"q{i:03d}_dead")
        create_standard_queue(
            env, f"q{i:03d}", redrive_policy=env.redrive_policy(f"q{i:03d}_dead", 3)
        )
        queue = env.queue(f"q{i:03d}")
        for n in range(i % 4):
            queue.add_job("job", n=n)

    parallel(make, range(pairs))


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def show(label: str, times: list[float]) -> None:
    print(
        f"{label:<44} best {min(times) * 1000:7.1f} ms   median "
        f"{statistics.median(times) * 1000:7.1f} ms"
    )


def add_latency(env: SQSEnv, seconds: float) -> Callable[[], None]:
    """Make every SQS call of ``env`` take ``seconds`` longer (a network round trip);
    returns the function that takes it away again."""

    def wait(**_: Any) -> None:
        time.sleep(seconds)

    events = env.sqs_client.meta.events
    events.register("before-send.sqs", wait)
    return lambda: events.unregister("before-send.sqs", wait)


def measure(env: SQSEnv, count: int, repeat: int, label: str) -> None:
    urls = list_queue_urls(env)
    assert len(urls) == count, f"{len(urls)} queues listed, expected {count}"
    # Every render asks SQS afresh (no sharing of one round between pages).
    board = Dashboard(env, DashboardOptions(reuse_seconds=0))
    client = TestClient(create_app(board, sample=False))
    page = client.get("/")  # warm up: connections, templates, CloudWatch's answer
    assert page.status_code == 200, page.text
    assert page.text.count("<tr data-queue=") == count

    def sequential() -> None:
        for name in urls:
            get_queue_attributes(env, name)

    render = timed(lambda: client.get("/").raise_for_status(), repeat)
    fetch = timed(lambda: fetch_queues(env), repeat)
    one_by_one = timed(sequential, repeat)
    print(f"{count} queues on LocalStack{label}, {repeat} runs each")
    show("overview page (GET /, whole app)", render)
    show("attributes, concurrent (fetch_queues)", fetch)
    show("baseline: attributes one queue at a time", one_by_one)
    print(
        f"overview vs. sequential attributes: {min(one_by_one) / min(render):.1f}x faster; "
        f"target < 1000 ms: {'met' if min(render) < 1.0 else 'NOT met'} "
        f"({min(render) * 1000:.0f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--endpoint", default=os.environ.get("SQSW_TEST_ENDPOINT"))
    parser.add_argument(
        "--latency",
        type=float,
        default=10.0,
        help="Then again with this many ms added to each SQS call, as a round trip to AWS "
        "adds (0: skip).",
    )
    args = parser.parse_args()
    ls = server = None
    endpoint = args.endpoint
    if not endpoint:
        ls = load_localstack()
        ls.install()
        server = ls.start_server(die_with_parent=True)
        endpoint = server.endpoint
    env = SQSEnv(
        AWSSession(endpoint_url=endpoint, **CREDENTIALS),
        queue_prefix=f"dash{uuid.uuid4().hex[:6]}_",
    )
    try:
        create_queues(env, args.queues)
        measure(env, args.queues, args.repeat, "")
        if args.latency > 0:
            remove = add_latency(env, args.latency / 1000)
            print()
            measure(env, args.queues, args.repeat, f" + {args.latency:g} ms per SQS call")
            remove()
    finally:
        parallel(
            lambda url: env.sqs_client.delete_queue(QueueUrl=url), list_queue_urls(env).values()
        )
        if ls is not None:
            ls.stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
