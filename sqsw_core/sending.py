"""Sending messages: size checks, batching into ``SendMessageBatch`` calls, raw messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from sqsw_core.exceptions import MessageTooLargeError, SQSBatchError
from sqsw_core.limits import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from sqsw_core.limits import MAX_BATCH_ENTRIES as MAX_BATCH_ENTRIES
from sqsw_core.limits import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS

T = TypeVar("T")


class BatchSender(Protocol):
    """What a :class:`SendBatch` sends through: a queue's name and ``send_entries``."""

    @property
    def name(self) -> str: ...

    def send_entries(self, entries: list[dict[str, Any]]) -> dict[str, Any]: ...


class RawSender(Protocol):
    """What :func:`add_raw_job` sends through: a queue's ``build_entry`` and ``send_entry``."""

    @property
    def name(self) -> str: ...

    def build_entry(
        self,
        body: str,
        attributes: dict[str, dict[str, Any]],
        delay_seconds: float | None,
        deduplication_id: Any,
        group_id: Any,
    ) -> dict[str, Any]: ...

    def send_entry(self, entry: dict[str, Any], job_name: str | None = None) -> str | None: ...


#: ``add_raw_job(message_attributes=...)`` values: a string, a number, bytes, or
#: the SQS form ``{"DataType": ..., "StringValue"/"BinaryValue": ...}``.
AttributeValue = str | int | float | bytes | dict[str, Any]


def message_attribute(name: str, value: AttributeValue) -> dict[str, Any]:
    """One SQS ``MessageAttributes`` value from a plain Python value."""
    if isinstance(value, dict):
        if "DataType" not in value:
            raise ValueError(f"message attribute {name!r}: {value!r} has no 'DataType'")
        return value
    if isinstance(value, bool):
        raise TypeError(f"message attribute {name!r}: SQS has no boolean type; use a str")
    if isinstance(value, str):
        return {"DataType": "String", "StringValue": value}
    if isinstance(value, int | float):
        return {"DataType": "Number", "StringValue": str(value)}
    if isinstance(value, bytes):
        return {"DataType": "Binary", "BinaryValue": value}
    raise TypeError(
        f"message attribute {name!r}: expected str, int, float, bytes or an SQS attribute "
        f"dict, got {type(value).__name__}"
    )


def _one_of(prefixed: Any, plain: Any, name: str) -> Any:
    if prefixed is not None and plain is not None:
        raise TypeError(f"add_raw_job() got both _{name} and {name}; give one")
    return prefixed if prefixed is not None else plain


def check_raw_body(queue_name: str, message_body: Any) -> None:
    """Refuse a raw message body SQS cannot take, saying what to send instead."""
    if isinstance(message_body, bytes | bytearray):
        raise TypeError(
            f"add_raw_job() on queue {queue_name!r}: the body must be str, got "
            f"{type(message_body).__name__}. SQS message bodies are text: decode it "
            "(body.decode('utf-8')) or base64-encode binary data."
        )
    if not isinstance(message_body, str):
        raise TypeError(
            f"add_raw_job() on queue {queue_name!r}: the body must be str, got "
            f"{type(message_body).__name__} (serialize it first, e.g. json.dumps(body))"
        )
    if not message_body:
        raise ValueError(f"add_raw_job() on queue {queue_name!r}: SQS refuses an empty body")


def add_raw_job(
    queue: RawSender,
    message_body: str,
    _delay_seconds: float | None = None,
    _deduplication_id: Any = None,
    _group_id: Any = None,
    *,
    delay_seconds: float | None = None,
    deduplication_id: Any = None,
    group_id: Any = None,
    message_attributes: dict[str, AttributeValue] | None = None,
) -> str | None:
    """Send ``message_body`` as is; returns the message id (``None`` in ``add_batch()``).

    On FIFO queues the group defaults to ``"default"`` and a deduplication
    id is needed unless the queue has content-based deduplication. The
    un-prefixed ``delay_seconds=`` etc. of sqs-workers are accepted too.
    Raw and dead-letter queues use this as their ``add_raw_job`` method.
    """
    check_raw_body(queue.name, message_body)
    attributes = {
        name: message_attribute(name, value) for name, value in (message_attributes or {}).items()
    }
    entry = queue.build_entry(
        message_body,
        attributes,
        _one_of(_delay_seconds, delay_seconds, "delay_seconds"),
        _one_of(_deduplication_id, deduplication_id, "deduplication_id"),
        _one_of(_group_id, group_id, "group_id"),
    )
    return queue.send_entry(entry)


class SendEntries(list[dict[str, Any]]):
    """The entries of one ``SendMessageBatch`` call, as the ``sending`` hook sees them.

    After the call, ``failed`` holds the ``Failed`` entries of SQS's answer
    (those it refused one by one; the call itself succeeded).
    """

    def __init__(self, entries: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(entries)
        self.failed: list[dict[str, Any]] = []


def message_size(entry: dict[str, Any]) -> int:
    """Bytes SQS counts for a message: body plus attribute names, types and values."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, attr in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode("utf-8")) + len(attr["DataType"].encode("utf-8"))
        value = attr.get("StringValue")
        if value is not None:
            size += len(value.encode("utf-8"))
        else:
            size += len(attr.get("BinaryValue") or b"")
    return size


def check_size(queue_name: str, job_name: str | None, size: int, limit: int) -> None:
    if size > limit:
        what = f"job {job_name!r}" if job_name else "message"
        raise MessageTooLargeError(
            f"{what} for queue {queue_name!r} is {size:,} bytes (body plus message "
            f"attributes); the limit is {limit:,} bytes. Send a reference to the data "
            "(an S3 key, a database id) instead of the data itself."
        )


def starts_new_batch(count: int, size: int, item_size: int, max_bytes: int) -> bool:
    """Whether an entry of ``item_size`` bytes must go in the next ``SendMessageBatch``
    call, after ``count`` entries of ``size`` bytes: 10 entries, or ``max_bytes``, per
    call (an entry larger than that alone still goes, in a call of its own)."""
    return count > 0 and (count >= MAX_BATCH_ENTRIES or size + item_size > max_bytes)


def size_chunks(
    items: Iterable[T], size_of: Callable[[T], int], max_bytes: int
) -> Iterator[list[T]]:
    """``items`` in ``SendMessageBatch``-sized chunks (see :func:`starts_new_batch`)."""
    chunk: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if starts_new_batch(len(chunk), size, item_size, max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


#: One buffered send: its ``SendMessage`` parameters, job name and size in bytes.
BufferedEntry = tuple[dict[str, Any], "str | None", int]


def batch_entries(chunk: list[BufferedEntry]) -> list[dict[str, Any]]:
    """The ``Entries`` of one ``SendMessageBatch`` call (each with its ``Id``)."""
    return [{"Id": str(i), **entry} for i, (entry, _, _) in enumerate(chunk)]


class SendBatch:
    """Messages buffered by ``queue.add_batch()``; sent 10 (or fewer, by size) at a time.

    After the ``with`` block, ``message_ids`` lists what SQS accepted; refused
    entries raise :class:`SQSBatchError` at the end of the block, never dropped.
    """

    def __init__(self, queue: BatchSender, max_bytes: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.queue = queue
        self.max_bytes = max_bytes
        self.level = 0
        self.entries: list[BufferedEntry] = []
        self.pending_bytes = 0
        self.message_ids: list[str] = []
        self.errors: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any], job_name: str | None, size: int) -> None:
        if self.starts_new(size):
            self.flush()
        if self.append(entry, job_name, size):
            self.flush()

    def starts_new(self, size: int) -> bool:
        """Whether an entry of ``size`` bytes must wait for what is buffered to be sent."""
        return starts_new_batch(len(self.entries), self.pending_bytes, size, self.max_bytes)

    def append(self, entry: dict[str, Any], job_name: str | None, size: int) -> bool:
        """Buffer one entry; whether the buffer is now a full batch, to send."""
        self.entries.append((entry, job_name, size))
        self.pending_bytes += size
        return len(self.entries) >= MAX_BATCH_ENTRIES

    def take(self) -> list[BufferedEntry]:
        """What is buffered, for one ``SendMessageBatch`` call; the buffer is empty after."""
        chunk, self.entries, self.pending_bytes = self.entries, [], 0
        return chunk

    def flush(self) -> None:
        """Send what is buffered in one ``SendMessageBatch`` call."""
        if self.entries:
            chunk = self.take()
            self.record(chunk, self.queue.send_entries(batch_entries(chunk)))

    def record(self, chunk: list[BufferedEntry], response: dict[str, Any]) -> None:
        """Note what SQS accepted and refused of one ``SendMessageBatch`` call of ``chunk``."""
        for ok in response.get("Successful", []):
            self.message_ids.append(ok["MessageId"])
        for failed in response.get("Failed", []):
            index = int(failed["Id"])
            entry, job_name, _ = chunk[index]
            self.errors.append({**failed, "_message": entry, "job_name": job_name})

    def close(self) -> None:
        """Send the rest; raise :class:`SQSBatchError` if any entry was refused."""
        self.flush()
        self.raise_refused()

    def raise_refused(self) -> None:
        """Raise :class:`SQSBatchError` for the entries SQS refused so far (once)."""
        if self.errors:
            errors, self.errors = self.errors, []
            raise SQSBatchError(self.queue.name, errors)
