"""Every queue of the environment and its attributes, fetched concurrently.

One ``ListQueues`` (paged) gives the URLs; ``GetQueueAttributes`` then runs for
all queues at once on a thread pool, so 200 queues take about as long as a
handful of calls. Dead-letter links come from the same attributes: a queue's
``RedrivePolicy`` names its dead-letter queue's ARN.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.retries import describe_error

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

__all__ = [
    "QueueInfo",
    "fetch_queue",
    "fetch_queues",
    "link_dead_letters",
    "list_queue_urls",
    "parallel",
]

#: Concurrent SQS calls: boto3's default connection pool holds 10 connections.
MAX_CONCURRENT_CALLS = 10

T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, run on up to 10 threads."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(MAX_CONCURRENT_CALLS, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass
class QueueInfo:
    """One queue's attributes as the pages use them."""

    name: str
    url: str
    attributes: dict[str, str] = field(default_factory=dict)
    #: Why the attributes are missing (the queue was deleted meanwhile, no permission).
    error: str | None = None
    #: Names of the queues whose redrive policy targets this one.
    sources: list[str] = field(default_factory=list)

    def number(self, attribute: str) -> int:
        return int(self.attributes.get(attribute, 0) or 0)

    @property
    def visible(self) -> int:
        return self.number("ApproximateNumberOfMessages")

    @property
    def in_flight(self) -> int:
        return self.number("ApproximateNumberOfMessagesNotVisible")

    @property
    def delayed(self) -> int:
        return self.number("ApproximateNumberOfMessagesDelayed")

    @property
    def arn(self) -> str:
        return self.attributes.get("QueueArn", "")

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoQueue") == "true" or self.name.endswith(".fifo")

    @property
    def redrive_policy(self) -> dict[str, Any] | None:
        text = self.attributes.get("RedrivePolicy")
        if not text:
            return None
        try:
            policy = json.loads(text)
        except ValueError:
            return None
        return policy if isinstance(policy, dict) else None

    @property
    def dead_letter_arn(self) -> str | None:
        policy = self.redrive_policy
        return (
            str(policy["deadLetterTargetArn"])
            if policy and "deadLetterTargetArn" in policy
            else None
        )

    @property
    def is_dead_letter_queue(self) -> bool:
        return bool(self.sources)


def list_queue_urls(env: SQSEnv) -> dict[str, str]:
    """Name (without the prefix) -> URL of every queue whose SQS name has the prefix."""
    urls: dict[str, str] = {}
    prefix = env.queue_prefix
    params: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
    while True:
        response = env.api.call("list_queues", None, **params)
        for url in response.get("QueueUrls", []):
            sqs_name = url.rsplit("/", 1)[-1]
            if sqs_name.startswith(prefix):
                urls[sqs_name[len(prefix) :]] = url
        token = response.get("NextToken")
        if not token:
            return urls
        params["NextToken"] = token


def _fetch_one(env: SQSEnv, name: str, url: str) -> QueueInfo:
    info = QueueInfo(name, url)
    try:
        response = env.api.call("get_queue_attributes", name, QueueUrl=url, AttributeNames=["All"])
        info.attributes = dict(response.get("Attributes", {}))
    except QueueNotFoundError:
        info.error = "deleted since it was listed"
    except Exception as exc:  # no permission, throttled: shown in its row
        info.error = describe_error(exc)
    return info


def link_dead_letters(infos: Iterable[QueueInfo]) -> dict[str, QueueInfo]:
    """Fill each queue's ``sources``; returns the queues by ARN."""
    by_arn = {info.arn: info for info in infos if info.arn}
    for info in by_arn.values():
        info.sources = []
    for info in sorted(by_arn.values(), key=lambda i: i.name):
        target = info.dead_letter_arn
        if target in by_arn:
            by_arn[target].sources.append(info.name)
    return by_arn


def fetch_queues(env: SQSEnv, urls: dict[str, str] | None = None) -> list[QueueInfo]:
    """Every queue of the environment with its attributes, sorted by name."""
    if urls is None:
        urls = list_queue_urls(env)
    infos = parallel(lambda item: _fetch_one(env, *item), sorted(urls.items()))
    link_dead_letters(infos)
    return infos


def fetch_queue(env: SQSEnv, name: str) -> QueueInfo:
    """One queue, with the queues that use it as their dead-letter queue.

    Raises ``QueueNotFoundError`` when there is no such queue.
    """
    url = env.get_queue_url(name)
    info = _fetch_one(env, name, url)
    if info.error is not None:
        raise QueueNotFoundError(name, f"queue {name!r}: {info.error}")
    response = env.api.call("list_dead_letter_source_queues", name, QueueUrl=url)
    prefix = env.queue_prefix
    sources = [u.rsplit("/", 1)[-1] for u in response.get("queueUrls", [])]
    info.sources = sorted(s[len(prefix) :] for s in sources if s.startswith(prefix))
    return info
