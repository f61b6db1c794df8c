"""The queues of one account in one region: creation, lookup, deletion, listing."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqsw_memory.errors import SQSError
from sqsw_memory.fifo import FifoQueue
from sqsw_memory.ids import IdFactory
from sqsw_memory.queue import Queue, QueueContext
from sqsw_memory.standard import StandardQueue
from sqsw_memory.validation import (
    RedriveTarget,
    check_queue_name,
    normalize_queue_attributes,
    parse_arn,
)

if TYPE_CHECKING:
    from sqsw_memory.move_tasks import MoveTask

__all__ = ["Registry"]

#: wait between deleting a queue and creating one with the same name
DELETE_COOLDOWN = 60.0

_NAME_MESSAGE = (
    "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
)


def _missing_queue() -> SQSError:
    return SQSError("QueueDoesNotExist", "The specified queue does not exist.")


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError):
        raise SQSError("InvalidParameterValue", "Invalid NextToken value.")


class Registry:
    """Queues of one (account, region); lookups are lock-free dict reads."""

    def __init__(
        self,
        region: str,
        account_id: str,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        ids: IdFactory,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.clock = clock
        self.ctx = QueueContext(region, account_id, clock, wall_clock, ids, self.find_by_arn)
        self.lock = threading.RLock()
        self.by_name: dict[str, Queue] = {}
        self.by_url: dict[str, Queue] = {}
        self.deleted_at: dict[str, float] = {}
        #: message move tasks (see :mod:`sqsw_memory.move_tasks`), newest last
        self.move_tasks: list[MoveTask] = []

    # -- lookup ---------------------------------------------------------------------

    def queue(self, url: str) -> Queue:
        """The queue a QueueUrl (or, as SQS also accepts, a bare queue name) names."""
        q = self.by_url.get(url)
        if q is not None:
            return q
        name = url
        if "/" in url:
            parts = url.rstrip("/").split("/")
            if len(parts) < 2 or parts[-2] != self.account_id:
                raise _missing_queue()
            name = parts[-1]
        q = self.by_name.get(name)
        if q is None:
            raise _missing_queue()
        return q

    def by_queue_name(self, name: str) -> Queue:
        q = self.by_name.get(name)
        if q is None:
            raise _missing_queue()
        return q

    def find_by_arn(self, arn: str) -> Queue | None:
        """The queue with this ARN in this account and region, if any."""
        parsed = parse_arn(arn)
        if parsed is None or parsed[0] != self.region or parsed[1] != self.account_id:
            return None
        q = self.by_name.get(parsed[2])
        return q if q is not None and q.arn == arn else None

    # -- create, change, delete -----------------------------------------------------

    def create(self, name: str, attributes: Mapping[str, str], tags: Mapping[str, str]) -> Queue:
        """CreateQueue: idempotent while the attributes given match the queue's."""
        fifo_value = attributes.get("FifoQueue")
        fifo = fifo_value is not None and fifo_value.lower() == "true"
        if name.endswith(".fifo") and not fifo:
            raise SQSError("InvalidParameterValue", _NAME_MESSAGE)
        check_queue_name(name, fifo)
        normalized, redrive = normalize_queue_attributes(attributes, fifo)
        with self.lock:
            existing = self.by_name.get(name)
            if existing is not None:
                for key, value in normalized.items():
                    if existing.attributes.get(key, "") != value:
                        raise SQSError(
                            "QueueNameExists",
                            "A queue already exists with the same name and a different value "
                            f"for attribute {key}",
                        )
                return existing
            now = self.clock()
            deleted = self.deleted_at.get(name)
            if deleted is not None:
                if now - deleted < DELETE_COOLDOWN:
                    raise SQSError(
                        "QueueDeletedRecently",
                        "You must wait 60 seconds after deleting a queue before you can create "
                        "another with the same name.",
                    )
                del self.deleted_at[name]
            if fifo:
                self._check_fifo_settings({**FifoQueue.defaults, **normalized})
            arn = f"arn:{self.ctx.partition}:sqs:{self.region}:{self.account_id}:{name}"
            if redrive is not None:
                self._check_redrive(arn, fifo, redrive)
            cls = FifoQueue if fifo else StandardQueue
            q = cls(self.ctx, name, normalized, dict(tags), redrive)
            self.by_name[name] = q
            self.by_url[q.url] = q
            return q

    def set_attributes(self, q: Queue, attributes: Mapping[str, str]) -> None:
        """SetQueueAttributes."""
        normalized, redrive = normalize_queue_attributes(attributes, q.fifo)
        with self.lock:
            if q.fifo:
                self._check_fifo_settings({**q.attributes, **normalized})
            if redrive is not None:
                self._check_redrive(q.arn, q.fifo, redrive)
            with q.lock:
                q.set_attributes(normalized, redrive)

    def _check_fifo_settings(self, attributes: Mapping[str, str]) -> None:
        if (
            attributes.get("FifoThroughputLimit") == "perMessageGroupId"
            and attributes.get("DeduplicationScope") != "messageGroup"
        ):
            raise SQSError(
                "InvalidAttributeValue",
                "The perMessageGroupId value is allowed only when the value for "
                "DeduplicationScope is messageGroup",
            )

    def _check_redrive(self, source_arn: str, fifo: bool, redrive: RedriveTarget) -> None:
        def bad(reason: str) -> SQSError:
            return SQSError(
                "InvalidParameterValue",
                f"Value {redrive.to_json()} for parameter RedrivePolicy is invalid. "
                f"Reason: {reason}",
            )

        dlq = self.find_by_arn(redrive.arn)
        if dlq is None:
            raise bad("Dead letter target does not exist.")
        if dlq.fifo != fifo:
            raise bad("Dead-letter queue must be same type of queue as the source.")
        allow = dlq.attributes.get("RedriveAllowPolicy")
        if allow:
            policy = json.loads(allow)
            permission = policy.get("redrivePermission")
            if permission == "denyAll" or (
                permission == "byQueue" and source_arn not in policy.get("sourceQueueArns", [])
            ):
                raise bad(
                    "Dead-letter queue's redrive allow policy does not allow this queue "
                    "as a source."
                )

    def delete(self, q: Queue) -> None:
        """DeleteQueue."""
        with self.lock:
            if self.by_name.get(q.name) is q:
                del self.by_name[q.name]
                self.by_url.pop(q.url, None)
                now = self.clock()
                if len(self.deleted_at) > 1000:
                    self.deleted_at = {
                        n: t for n, t in self.deleted_at.items() if now - t < DELETE_COOLDOWN
                    }
                self.deleted_at[q.name] = now
        q.close()

    # -- listing --------------------------------------------------------------------

    def _page(
        self, queues: list[Queue], max_results: int | None, next_token: str | None
    ) -> tuple[list[str], str | None]:
        names = sorted(q.name for q in queues)
        if next_token is not None:
            after = _decode_token(next_token)
            names = [n for n in names if n > after]
        if max_results is None:
            return [self.ctx.url_base + n for n in names[:1000]], None
        page = names[:max_results]
        token = _encode_token(page[-1]) if len(names) > max_results else None
        return [self.ctx.url_base + n for n in page], token

    def list_queues(
        self, prefix: str | None, max_results: int | None, next_token: str | None
    ) -> tuple[list[str], str | None]:
        """ListQueues: URLs (sorted by name) and the NextToken, if any."""
        queues = [q for q in list(self.by_name.values()) if not prefix or q.name.startswith(prefix)]
        return self._page(queues, max_results, next_token)

    def dead_letter_sources(
        self, dlq: Queue, max_results: int | None, next_token: str | None
    ) -> tuple[list[str], str | None]:
        """ListDeadLetterSourceQueues."""
        queues = [
            q
            for q in list(self.by_name.values())
            if q.redrive is not None and q.redrive.arn == dlq.arn
        ]
        return self._page(queues, max_results, next_token)

    def is_dead_letter_queue(self, arn: str) -> bool:
        """Whether some queue's RedrivePolicy targets ``arn``."""
        return any(
            q.redrive is not None and q.redrive.arn == arn for q in list(self.by_name.values())
        )
