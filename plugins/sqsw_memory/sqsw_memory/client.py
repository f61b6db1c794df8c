"""The boto3-shaped SQS client of a :class:`~sqsw_memory.session.MemorySession`.

Method names, keyword-only CamelCase arguments, response dicts (including
``ResponseMetadata``) and exceptions are those of ``boto3.client("sqs")``.
Parameters are checked as botocore checks them (``ParamValidationError``);
the hot operations check types cheaply and only run botocore's full validator
to word the error when something is off.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from botocore.exceptions import ParamValidationError

from sqsw_memory.errors import SQSError, client_exceptions, service_model, validate_params
from sqsw_memory.hashing import md5_of_attributes, md5_of_body
from sqsw_memory.message import Message
from sqsw_memory.move_tasks import cancel_move_task, list_move_tasks, start_move_task
from sqsw_memory.queue import MAX_VISIBILITY, AttributeFilter, Queue
from sqsw_memory.validation import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    check_batch_ids,
    check_body,
    check_fifo_id,
    check_int,
    check_message_attributes,
    check_system_attributes,
)

if TYPE_CHECKING:
    from sqsw_memory.registry import Registry
    from sqsw_memory.session import MemorySession

__all__ = ["MemorySQSClient"]

P = ParamSpec("P")
R = TypeVar("R")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


#: default of every parameter: "not given" (None is passed on to validation, as boto3 does)
_UNSET: Any = _Unset()

_QUEUE_ATTRIBUTE_NAMES = frozenset(
    {
        "All",
        "Policy",
        "VisibilityTimeout",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
        "ApproximateNumberOfMessagesDelayed",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
        "RedrivePolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "RedriveAllowPolicy",
        "SqsManagedSseEnabled",
    }
)
_SEND_ENTRY_KEYS = frozenset(
    {
        "Id",
        "MessageBody",
        "DelaySeconds",
        "MessageAttributes",
        "MessageSystemAttributes",
        "MessageDeduplicationId",
        "MessageGroupId",
    }
)
_DELETE_ENTRY_KEYS = frozenset({"Id", "ReceiptHandle"})
_CHANGE_ENTRY_KEYS = frozenset({"Id", "ReceiptHandle", "VisibilityTimeout"})
_PAGINATED = {
    "list_queues": "ListQueues",
    "list_dead_letter_source_queues": "ListDeadLetterSourceQueues",
}


def _operation(
    name: str,
) -> Callable[
    [Callable[Concatenate[MemorySQSClient, P], R]], Callable[Concatenate[MemorySQSClient, P], R]
]:
    """Turn :class:`SQSError` into the botocore exception of operation ``name``."""

    def decorate(
        fn: Callable[Concatenate[MemorySQSClient, P], R],
    ) -> Callable[Concatenate[MemorySQSClient, P], R]:
        @functools.wraps(fn)
        def call(self: MemorySQSClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(self, *args, **kwargs)
            except SQSError as exc:
                raise exc.to_client_error(name, self._request_ids.next()) from None

        return call

    return decorate


def _given(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not _UNSET}


def _reject(operation: str, **params: Any) -> ParamValidationError:
    """The ParamValidationError botocore raises for these parameters."""
    validate_params(operation, _given(**params))
    return ParamValidationError(report=f"Invalid parameters for {operation}")


def _attribute_filter(names: Sequence[str] | None) -> AttributeFilter:
    if not names:
        return None
    exact: set[str] = set()
    prefixes: list[str] = []
    for n in names:
        if n in ("All", ".*", "*"):
            return True
        if n.endswith(".*"):
            prefixes.append(n[:-2])
        else:
            exact.add(n)
    return frozenset(exact), tuple(prefixes)


#: (AttributeNames, MessageSystemAttributeNames, MessageAttributeNames) as tuples (None =
#: not given) -> what ReceiveMessage renders; receivers repeat the same few arguments
_RECEIVE_FILTERS: dict[
    tuple[tuple[Any, ...] | None, tuple[Any, ...] | None, tuple[Any, ...] | None],
    tuple[frozenset[str] | None, AttributeFilter],
] = {}
_CACHE_LIMIT = 1024


def _receive_filters(
    attribute_names: Any, system_attribute_names: Any, message_attribute_names: Any
) -> tuple[frozenset[str] | None, AttributeFilter]:
    """System attribute names and message attribute filter of a ReceiveMessage (cached)."""
    key = (
        None if attribute_names is _UNSET else tuple(attribute_names),
        None if system_attribute_names is _UNSET else tuple(system_attribute_names),
        None if message_attribute_names is _UNSET else tuple(message_attribute_names),
    )
    try:
        found = _RECEIVE_FILTERS.get(key)
    except TypeError:  # unhashable names: worked out (and rejected) below
        found = None
        cacheable = False
    else:
        cacheable = True
    if found is not None:
        return found
    system_names: frozenset[str] | None = None
    if key[0] is not None or key[1] is not None:
        system_names = frozenset([*(key[0] or ()), *(key[1] or ())])
    result = system_names, _attribute_filter(key[2])
    if cacheable:
        if len(_RECEIVE_FILTERS) >= _CACHE_LIMIT:
            _RECEIVE_FILTERS.clear()
        _RECEIVE_FILTERS[key] = result
    return result


#: batch entry ids known to be valid (ids repeat: "0".."9", job ids, ...)
_VALID_BATCH_IDS: set[str] = set()
#: whole lists of ids known to pass (senders repeat them: "0".."9" for every batch)
_VALID_ID_LISTS: set[tuple[str, ...]] = set()


def _known_batch_ids(ids: list[str]) -> bool:
    """Whether ``ids`` certainly pass :func:`check_batch_ids` (known valid, distinct)."""
    if not 0 < len(ids) <= MAX_BATCH_ENTRIES:
        return False
    listed = tuple(ids)
    if listed in _VALID_ID_LISTS:
        return True
    known = _VALID_BATCH_IDS
    for i in ids:
        if i not in known:
            return False
    if len(set(ids)) != len(ids):
        return False
    _remember_id_list(listed)
    return True


def _remember_batch_ids(ids: list[str]) -> None:
    if len(_VALID_BATCH_IDS) >= 4 * _CACHE_LIMIT:
        _VALID_BATCH_IDS.clear()
    _VALID_BATCH_IDS.update(ids)
    _remember_id_list(tuple(ids))


def _remember_id_list(ids: tuple[str, ...]) -> None:
    if len(_VALID_ID_LISTS) >= _CACHE_LIMIT:
        _VALID_ID_LISTS.clear()
    _VALID_ID_LISTS.add(ids)


#: validated message attributes: (stored copy, size in bytes, MD5OfMessageAttributes)
_Validated = tuple[dict[str, dict[str, Any]], int, str]
#: String/Number-only message attributes already validated, by names and values; a hit
#: is confirmed by comparing the request's attributes with the stored copy, so the key
#: only has to be cheap. The copies are shared by messages and never mutated.
_VALIDATED_ATTRIBUTES: dict[tuple[Any, ...], _Validated] = {}


def _cached_attributes(attributes: Mapping[str, Any] | None) -> _Validated | None:
    """What validating ``attributes`` gave before, if they were validated already."""
    if not attributes:
        return None
    try:
        found = _VALIDATED_ATTRIBUTES.get(
            (*attributes, *[a.get("StringValue") for a in attributes.values()])
        )
    except (TypeError, AttributeError):  # not (hashable) mappings: validation tells
        return None
    if found is not None and found[0] == attributes:
        return found
    return None


def _validate_attributes(attributes: Mapping[str, Any]) -> _Validated:
    """Validate message attributes (raise SQSError) and remember String/Number-only ones."""
    copy, size = check_message_attributes(attributes)
    found = copy, size, md5_of_attributes(copy)
    values = [a.get("StringValue") for a in copy.values()]
    if None not in values:
        if len(_VALIDATED_ATTRIBUTES) >= _CACHE_LIMIT:
            _VALIDATED_ATTRIBUTES.clear()
        key = (*copy, *values)
        _VALIDATED_ATTRIBUTES[key] = found
    return found


def _raw_size(entry: Mapping[str, Any], cached: _Validated | None) -> int:
    """Bytes an entry counts toward the batch limit (body plus attributes)."""
    body = entry["MessageBody"]
    size = len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))
    if cached is not None:
        # String/Number attributes count what validation counted: names, types, values
        return size + cached[1]
    for name, attr in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode("utf-8", "surrogatepass"))
        for key, value in attr.items():
            if key in ("StringValue", "DataType") and isinstance(value, str):
                size += len(value.encode("utf-8", "surrogatepass"))
            elif key == "BinaryValue" and isinstance(value, (bytes, bytearray)):
                size += len(value)
    return size


def _read_send_entries(entries: Any) -> tuple[list[Mapping[str, Any]], list[str]]:
    """SendMessageBatch ``Entries`` as a list, and their Ids, after the batch-level checks.

    Raises KeyError, TypeError or AttributeError when botocore would reject them.
    """
    if not isinstance(entries, (list, tuple)):
        raise TypeError
    entries = list(entries)
    ids: list[str] = []
    for e in entries:
        entry_id = e["Id"]
        if not (
            e.keys() <= _SEND_ENTRY_KEYS
            and isinstance(entry_id, str)
            and isinstance(e["MessageBody"], str)
        ):
            raise TypeError
        ids.append(entry_id)
    if not _known_batch_ids(ids):
        check_batch_ids(entries, "SendMessageBatchRequestEntry")
        _remember_batch_ids(ids)
    return entries, ids


def _known_attributes_and_size(
    entries: list[Mapping[str, Any]],
) -> tuple[list[_Validated | None], int]:
    """What validating each entry's attributes gave before (None: unknown), and the batch size."""
    found: list[_Validated | None] = []
    total = 0
    for e in entries:
        cached = _cached_attributes(e.get("MessageAttributes"))
        found.append(cached)
        total += _raw_size(e, cached)
    return found, total


_NO_GROUP_ID = "The request must contain the parameter MessageGroupId."
_NO_DEDUPLICATION_ID = (
    "The queue should either have ContentBasedDeduplication enabled or "
    "MessageDeduplicationId provided explicitly"
)


def _check_send_batch(q: Queue, entries: list[Mapping[str, Any]], total: int) -> None:
    """What SQS checks of a whole SendMessageBatch before it builds any message."""
    if q.fifo:
        for e in entries:
            if e.get("MessageGroupId") is None:
                raise SQSError("InvalidParameterValue", _NO_GROUP_ID)
            if e.get("MessageDeduplicationId") is None and not q.content_dedup:
                raise SQSError("InvalidParameterValue", _NO_DEDUPLICATION_ID)
    if total > MAX_BATCH_BYTES:
        raise SQSError(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent "
            f"{total} bytes.",
        )


def _fifo_delay_error(delay: int) -> SQSError:
    return SQSError(
        "InvalidParameterValue",
        f"Value {delay} for parameter DelaySeconds is invalid. Reason: The request "
        "include parameter that is not valid for this queue type.",
    )


def _message_too_long(max_size: int) -> SQSError:
    return SQSError(
        "InvalidParameterValue",
        "One or more parameters are invalid. Reason: Message must be shorter than "
        f"{max_size} bytes.",
    )


def _not_for_standard_queue(dedup_id: str) -> SQSError:
    return SQSError(
        "InvalidParameterValue",
        f"Value {dedup_id} for parameter MessageDeduplicationId is invalid. Reason: "
        "The request includes a parameter that is not valid for this queue type.",
    )


def _with_digests(
    result: dict[str, Any], m: Message, sequence_number: str | None
) -> dict[str, Any]:
    """A SendMessage result or batch entry completed with what only some messages have."""
    if m.md5_attributes is not None:
        result["MD5OfMessageAttributes"] = m.md5_attributes
    if m.system_attributes:
        result["MD5OfMessageSystemAttributes"] = md5_of_attributes(m.system_attributes)
    if sequence_number is not None:
        result["SequenceNumber"] = sequence_number
    return result


def _receive_options(
    q: Queue, max_number: int, visibility_timeout: int, wait_time: int, attempt_id: str
) -> tuple[int, int, int, str | None]:
    """``(count, visibility, wait, attempt id)`` of a ReceiveMessage on ``q``, checked.

    What is not given (``_UNSET``) is the default or the queue's setting; only FIFO
    queues use the attempt id.
    """
    count = 1
    if max_number is not _UNSET:
        count = max_number
        check_int("MaxNumberOfMessages", count, 1, 10)
    visibility = q.visibility_timeout
    if visibility_timeout is not _UNSET:
        visibility = visibility_timeout
        check_int(
            "VisibilityTimeout",
            visibility,
            0,
            MAX_VISIBILITY,
            f"Must be >= 0 and <= {MAX_VISIBILITY}, if provided.",
        )
    wait = q.wait_time
    if wait_time is not _UNSET:
        wait = wait_time
        check_int("WaitTimeSeconds", wait, 0, 20, "Must be >= 0 and <= 20, if provided.")
    if attempt_id is _UNSET or not q.fifo:
        return count, visibility, wait, None
    check_fifo_id(attempt_id, "ReceiveRequestAttemptId")
    return count, visibility, wait, attempt_id


class ClientMeta:
    """The bits of ``client.meta`` code commonly reads."""

    def __init__(self, region_name: str) -> None:
        self.region_name = region_name
        self.endpoint_url = f"memory://sqs.{region_name}"
        self.partition = "aws"

    @property
    def service_model(self) -> Any:
        return service_model()


class Paginator:
    """``client.get_paginator(...)``: pages of ListQueues / ListDeadLetterSourceQueues."""

    def __init__(self, method: Callable[..., dict[str, Any]], result_key: str) -> None:
        self._method = method
        self._result_key = result_key

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield response pages, following NextToken."""
        config = kwargs.pop("PaginationConfig", None) or {}
        if "PageSize" in config:
            kwargs["MaxResults"] = config["PageSize"]
        if config.get("StartingToken"):
            kwargs["NextToken"] = config["StartingToken"]
        kwargs.setdefault("MaxResults", 1000)
        while True:
            page = self._method(**kwargs)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token


class MemorySQSClient:
    """An in-memory ``boto3.client("sqs")``: same methods, arguments, responses and errors."""

    def __init__(self, session: MemorySession, registry: Registry) -> None:
        self._session = session
        self._registry = registry
        self._request_ids = session._request_ids
        self._message_ids = session._message_ids
        self._clock = session.clock
        self._wall_clock = session.wall_clock
        self.meta = ClientMeta(registry.region)

    # -- client plumbing ------------------------------------------------------------

    @property
    def exceptions(self) -> Any:
        """The exception classes of a real botocore SQS client (``client.exceptions.X``)."""
        return client_exceptions()

    def can_paginate(self, operation_name: str) -> bool:
        return operation_name in _PAGINATED

    def get_paginator(self, operation_name: str) -> Paginator:
        if operation_name == "list_queues":
            return Paginator(self.list_queues, "QueueUrls")
        if operation_name == "list_dead_letter_source_queues":
            return Paginator(self.list_dead_letter_source_queues, "queueUrls")
        raise ValueError(f"Operation cannot be paginated: {operation_name}")

    def close(self) -> None:
        """Nothing to release (boto3 compatibility)."""

    def _ok(self, body: dict[str, Any]) -> dict[str, Any]:
        request_id = self._request_ids.next()
        body["ResponseMetadata"] = {
            "RequestId": request_id,
            "HTTPStatusCode": 200,
            "HTTPHeaders": {
                "x-amzn-requestid": request_id,
                "content-type": "application/x-amz-json-1.0",
            },
            "RetryAttempts": 0,
        }
        return body

    def _queue(self, operation: str, queue_url: Any) -> Queue:
        if not isinstance(queue_url, str):
            raise _reject(operation, QueueUrl=queue_url)
        return self._registry.queue(queue_url)

    # -- queues ---------------------------------------------------------------------

    @_operation("CreateQueue")
    def create_queue(
        self,
        *,
        QueueName: str = _UNSET,
        Attributes: Mapping[str, str] = _UNSET,
        tags: Mapping[str, str] = _UNSET,
    ) -> dict[str, Any]:
        validate_params(
            "CreateQueue", _given(QueueName=QueueName, Attributes=Attributes, tags=tags)
        )
        q = self._registry.create(
            QueueName,
            {} if Attributes is _UNSET else Attributes,
            {} if tags is _UNSET else tags,
        )
        return self._ok({"QueueUrl": q.url})

    @_operation("GetQueueUrl")
    def get_queue_url(
        self, *, QueueName: str = _UNSET, QueueOwnerAWSAccountId: str = _UNSET
    ) -> dict[str, Any]:
        validate_params(
            "GetQueueUrl",
            _given(QueueName=QueueName, QueueOwnerAWSAccountId=QueueOwnerAWSAccountId),
        )
        if (
            QueueOwnerAWSAccountId is not _UNSET
            and QueueOwnerAWSAccountId != self._registry.account_id
        ):
            raise SQSError("QueueDoesNotExist", "The specified queue does not exist.")
        return self._ok({"QueueUrl": self._registry.by_queue_name(QueueName).url})

    @_operation("ListQueues")
    def list_queues(
        self,
        *,
        QueueNamePrefix: str = _UNSET,
        NextToken: str = _UNSET,
        MaxResults: int = _UNSET,
    ) -> dict[str, Any]:
        validate_params(
            "ListQueues",
            _given(QueueNamePrefix=QueueNamePrefix, NextToken=NextToken, MaxResults=MaxResults),
        )
        max_results = None if MaxResults is _UNSET else MaxResults
        if max_results is not None:
            check_int(
                "MaxResults",
                max_results,
                1,
                1000,
                "MaxResults must be an integer between 1 and 1000.",
            )
        urls, token = self._registry.list_queues(
            None if QueueNamePrefix is _UNSET else QueueNamePrefix,
            max_results,
            None if NextToken is _UNSET else NextToken,
        )
        body: dict[str, Any] = {}
        if urls:
            body["QueueUrls"] = urls
        if token:
            body["NextToken"] = token
        return self._ok(body)

    @_operation("DeleteQueue")
    def delete_queue(self, *, QueueUrl: str = _UNSET) -> dict[str, Any]:
        validate_params("DeleteQueue", _given(QueueUrl=QueueUrl))
        self._registry.delete(self._registry.queue(QueueUrl))
        return self._ok({})

    def interrupt_receives(self, *, QueueUrl: str) -> None:
        """Not an SQS operation: end the long polls in progress on the queue at once.

        A worker stopping in this process calls it so that its receives do not
        wait out their ``WaitTimeSeconds`` (on SQS itself they must).
        """
        self._registry.queue(QueueUrl).interrupt_receives()

    @_operation("PurgeQueue")
    def purge_queue(self, *, QueueUrl: str = _UNSET) -> dict[str, Any]:
        validate_params("PurgeQueue", _given(QueueUrl=QueueUrl))
        self._registry.queue(QueueUrl).purge()
        return self._ok({})

    @_operation("GetQueueAttributes")
    def get_queue_attributes(
        self, *, QueueUrl: str = _UNSET, AttributeNames: Sequence[str] = _UNSET
    ) -> dict[str, Any]:
        validate_params(
            "GetQueueAttributes", _given(QueueUrl=QueueUrl, AttributeNames=AttributeNames)
        )
        q = self._registry.queue(QueueUrl)
        names = [] if AttributeNames is _UNSET else list(AttributeNames)
        for name in names:
            if name not in _QUEUE_ATTRIBUTE_NAMES:
                raise SQSError("InvalidAttributeName", f"Unknown Attribute {name}.")
        attributes = q.get_attributes(names) if names else {}
        return self._ok({"Attributes": attributes} if attributes else {})

    @_operation("SetQueueAttributes")
    def set_queue_attributes(
        self, *, QueueUrl: str = _UNSET, Attributes: Mapping[str, str] = _UNSET
    ) -> dict[str, Any]:
        validate_params("SetQueueAttributes", _given(QueueUrl=QueueUrl, Attributes=Attributes))
        q = self._registry.queue(QueueUrl)
        self._registry.set_attributes(q, Attributes)
        return self._ok({})

    @_operation("ListDeadLetterSourceQueues")
    def list_dead_letter_source_queues(
        self, *, QueueUrl: str = _UNSET, NextToken: str = _UNSET, MaxResults: int = _UNSET
    ) -> dict[str, Any]:
        validate_params(
            "ListDeadLetterSourceQueues",
            _given(QueueUrl=QueueUrl, NextToken=NextToken, MaxResults=MaxResults),
        )
        q = self._registry.queue(QueueUrl)
        max_results = None if MaxResults is _UNSET else MaxResults
        if max_results is not None:
            check_int(
                "MaxResults",
                max_results,
                1,
                1000,
                "MaxResults must be an integer between 1 and 1000.",
            )
        urls, token = self._registry.dead_letter_sources(
            q, max_results, None if NextToken is _UNSET else NextToken
        )
        body: dict[str, Any] = {}
        if urls:
            body["queueUrls"] = urls
        if token:
            body["NextToken"] = token
        return self._ok(body)

    @_operation("TagQueue")
    def tag_queue(
        self, *, QueueUrl: str = _UNSET, Tags: Mapping[str, str] = _UNSET
    ) -> dict[str, Any]:
        validate_params("TagQueue", _given(QueueUrl=QueueUrl, Tags=Tags))
        q = self._registry.queue(QueueUrl)
        with q.lock:
            q.tags.update(Tags)
        return self._ok({})

    @_operation("UntagQueue")
    def untag_queue(
        self, *, QueueUrl: str = _UNSET, TagKeys: Sequence[str] = _UNSET
    ) -> dict[str, Any]:
        validate_params("UntagQueue", _given(QueueUrl=QueueUrl, TagKeys=TagKeys))
        q = self._registry.queue(QueueUrl)
        with q.lock:
            for key in TagKeys:
                q.tags.pop(key, None)
        return self._ok({})

    @_operation("ListQueueTags")
    def list_queue_tags(self, *, QueueUrl: str = _UNSET) -> dict[str, Any]:
        validate_params("ListQueueTags", _given(QueueUrl=QueueUrl))
        q = self._registry.queue(QueueUrl)
        with q.lock:
            tags = dict(q.tags)
        return self._ok({"Tags": tags} if tags else {})

    @_operation("AddPermission")
    def add_permission(
        self,
        *,
        QueueUrl: str = _UNSET,
        Label: str = _UNSET,
        AWSAccountIds: Sequence[str] = _UNSET,
        Actions: Sequence[str] = _UNSET,
    ) -> dict[str, Any]:
        validate_params(
            "AddPermission",
            _given(QueueUrl=QueueUrl, Label=Label, AWSAccountIds=AWSAccountIds, Actions=Actions),
        )
        q = self._registry.queue(QueueUrl)
        partition = q.ctx.partition
        principals = [f"arn:{partition}:iam::{a}:root" for a in AWSAccountIds]
        actions = [f"SQS:{a}" for a in Actions]
        statement = {
            "Sid": Label,
            "Effect": "Allow",
            "Principal": {"AWS": principals if len(principals) > 1 else principals[0]},
            "Action": actions if len(actions) > 1 else actions[0],
            "Resource": q.arn,
        }
        with q.lock:
            current = q.attributes.get("Policy")
            policy: dict[str, Any] = (
                json.loads(current)
                if current
                else {"Version": "2008-10-17", "Id": f"{q.arn}/SQSDefaultPolicy", "Statement": []}
            )
            statements: list[dict[str, Any]] = policy.setdefault("Statement", [])
            if any(s.get("Sid") == Label for s in statements):
                raise SQSError(
                    "InvalidParameterValue",
                    f"Value {Label} for parameter Label is invalid. Reason: Already exists.",
                )
            statements.append(statement)
            q.attributes["Policy"] = json.dumps(policy)
        return self._ok({})

    @_operation("RemovePermission")
    def remove_permission(self, *, QueueUrl: str = _UNSET, Label: str = _UNSET) -> dict[str, Any]:
        validate_params("RemovePermission", _given(QueueUrl=QueueUrl, Label=Label))
        q = self._registry.queue(QueueUrl)
        with q.lock:
            current = q.attributes.get("Policy")
            policy = json.loads(current) if current else {"Statement": []}
            statements = policy.get("Statement", [])
            kept = [s for s in statements if s.get("Sid") != Label]
            if len(kept) == len(statements):
                raise SQSError(
                    "InvalidParameterValue",
                    f"Value {Label} for parameter Label is invalid. Reason: can't find label.",
                )
            if kept:
                policy["Statement"] = kept
                q.attributes["Policy"] = json.dumps(policy)
            else:
                q.attributes.pop("Policy", None)
        return self._ok({})

    # -- sending --------------------------------------------------------------------

    def _build(
        self,
        q: Queue,
        body: str,
        delay: int,
        attributes: Mapping[str, Any] | None,
        system_attributes: Mapping[str, Any] | None,
        dedup_id: str | None,
        group_id: str | None,
        sent_ms: int,
        sent_at: float,
        cached: _Validated | None,
    ) -> tuple[Message, int]:
        """Validate one message for ``q``; the stored message and its delay (-1 = queue's).

        ``cached``: what :func:`_cached_attributes` found for ``attributes``.
        """
        data = check_body(body)
        size = len(data)
        copy = md5_attributes = None
        if attributes:
            copy, extra, md5_attributes = (
                _validate_attributes(attributes) if cached is None else cached
            )
            size += extra
        system = check_system_attributes(system_attributes) if system_attributes else None
        if size > q.max_size:
            raise _message_too_long(q.max_size)
        if q.fifo:
            if delay > 0:
                raise _fifo_delay_error(delay)
            if group_id is None:
                raise SQSError("MissingParameter", _NO_GROUP_ID)
            check_fifo_id(group_id, "MessageGroupId")
            if dedup_id is None:
                if not q.content_dedup:
                    raise SQSError("InvalidParameterValue", _NO_DEDUPLICATION_ID)
                dedup_id = hashlib.sha256(data).hexdigest()
            else:
                check_fifo_id(dedup_id, "MessageDeduplicationId")
            delay = -1
        else:
            if dedup_id is not None:
                raise _not_for_standard_queue(dedup_id)
            if group_id is not None:
                check_fifo_id(group_id, "MessageGroupId")  # fair queues accept a group id
            if delay >= 0:
                check_int("DelaySeconds", delay, 0, 900, "DelaySeconds must be >= 0 and <= 900.")
        m = Message(
            0, self._message_ids.next(), body, md5_of_body(data), size, sent_ms, sent_at,
            copy, md5_attributes, system, group_id, dedup_id,
        )  # fmt: skip
        return m, delay

    @_operation("SendMessage")
    def send_message(
        self,
        *,
        QueueUrl: str = _UNSET,
        MessageBody: str = _UNSET,
        DelaySeconds: int = _UNSET,
        MessageAttributes: Mapping[str, Any] = _UNSET,
        MessageSystemAttributes: Mapping[str, Any] = _UNSET,
        MessageDeduplicationId: str = _UNSET,
        MessageGroupId: str = _UNSET,
    ) -> dict[str, Any]:
        if not (
            isinstance(QueueUrl, str)
            and isinstance(MessageBody, str)
            and (DelaySeconds is _UNSET or isinstance(DelaySeconds, int))
            and (MessageAttributes is _UNSET or isinstance(MessageAttributes, Mapping))
            and (MessageSystemAttributes is _UNSET or isinstance(MessageSystemAttributes, Mapping))
            and (MessageDeduplicationId is _UNSET or isinstance(MessageDeduplicationId, str))
            and (MessageGroupId is _UNSET or isinstance(MessageGroupId, str))
        ):
            raise _reject(
                "SendMessage",
                QueueUrl=QueueUrl,
                MessageBody=MessageBody,
                DelaySeconds=DelaySeconds,
                MessageAttributes=MessageAttributes,
                MessageSystemAttributes=MessageSystemAttributes,
                MessageDeduplicationId=MessageDeduplicationId,
                MessageGroupId=MessageGroupId,
            )
        q = self._registry.queue(QueueUrl)
        try:
            m, delay = self._build(
                q,
                MessageBody,
                -1 if DelaySeconds is _UNSET else DelaySeconds,
                None if MessageAttributes is _UNSET else MessageAttributes,
                None if MessageSystemAttributes is _UNSET else MessageSystemAttributes,
                None if MessageDeduplicationId is _UNSET else MessageDeduplicationId,
                None if MessageGroupId is _UNSET else MessageGroupId,
                int(self._wall_clock() * 1000),
                self._clock(),
                None if MessageAttributes is _UNSET else _cached_attributes(MessageAttributes),
            )
        except (KeyError, TypeError, AttributeError):
            validate_params(
                "SendMessage",
                _given(
                    QueueUrl=QueueUrl,
                    MessageBody=MessageBody,
                    MessageAttributes=MessageAttributes,
                    MessageSystemAttributes=MessageSystemAttributes,
                    MessageDeduplicationId=MessageDeduplicationId,
                    MessageGroupId=MessageGroupId,
                ),
            )
            raise
        ((message_id, sequence_number),) = q.add([(m, delay)])
        body = {"MD5OfMessageBody": m.md5_body, "MessageId": message_id}
        return self._ok(_with_digests(body, m, sequence_number))

    @_operation("SendMessageBatch")
    def send_message_batch(
        self, *, QueueUrl: str = _UNSET, Entries: Sequence[Mapping[str, Any]] = _UNSET
    ) -> dict[str, Any]:
        q = self._queue("SendMessageBatch", QueueUrl)
        try:
            entries, ids = _read_send_entries(Entries)
            found, total = _known_attributes_and_size(entries)
            _check_send_batch(q, entries, total)
            items, built_ids, failed = self._build_entries(q, entries, ids, found)
        except (KeyError, TypeError, AttributeError):
            validate_params("SendMessageBatch", _given(QueueUrl=QueueUrl, Entries=Entries))
            raise
        successful: list[dict[str, Any]] = []
        if items:
            results = q.add(items)
            successful = [
                _with_digests(
                    {"Id": entry_id, "MessageId": message_id, "MD5OfMessageBody": m.md5_body},
                    m,
                    sequence_number,
                )
                for entry_id, (m, _), (message_id, sequence_number) in zip(
                    built_ids, items, results, strict=True
                )
            ]
        return self._ok(_batch_body(successful, failed))

    def _build_entries(
        self,
        q: Queue,
        entries: list[Mapping[str, Any]],
        ids: list[str],
        found: list[_Validated | None],
    ) -> tuple[list[tuple[Message, int]], list[str], list[dict[str, Any]]]:
        """Build a batch's messages: (message, delay) pairs, their Ids, and Failed entries."""
        sent_ms = int(self._wall_clock() * 1000)
        sent_at = self._clock()
        build = self._build
        items: list[tuple[Message, int]] = []
        built_ids: list[str] = []
        failed: list[dict[str, Any]] = []
        # the usual entry on a standard queue: Id, printable ASCII MessageBody and maybe
        # already validated MessageAttributes; _build's checks reduce to the size limit
        lean = not q.fifo
        max_size = q.max_size
        next_id = self._message_ids.next
        md5 = hashlib.md5
        for e, entry_id, cached in zip(entries, ids, found, strict=True):
            if lean and len(e) == (2 if cached is None else 3):
                text = e["MessageBody"]
                if text and text.isascii() and text.isprintable():
                    data = text.encode("ascii")
                    size = len(data) if cached is None else len(data) + cached[1]
                    if size <= max_size:
                        md5_body = md5(data, usedforsecurity=False).hexdigest()
                        if cached is None:
                            m = Message(0, next_id(), text, md5_body, size, sent_ms, sent_at)
                        else:
                            m = Message(
                                0, next_id(), text, md5_body, size, sent_ms, sent_at,
                                cached[0], cached[2],
                            )  # fmt: skip
                        items.append((m, -1))
                        built_ids.append(entry_id)
                        continue
            try:
                items.append(
                    build(
                        q,
                        e["MessageBody"],
                        e.get("DelaySeconds", -1),
                        e.get("MessageAttributes"),
                        e.get("MessageSystemAttributes"),
                        e.get("MessageDeduplicationId"),
                        e.get("MessageGroupId"),
                        sent_ms,
                        sent_at,
                        cached,
                    )
                )
                built_ids.append(entry_id)
            except SQSError as exc:
                failed.append(_failed_entry(entry_id, exc))
        return items, built_ids, failed

    # -- receiving ------------------------------------------------------------------

    @_operation("ReceiveMessage")
    def receive_message(
        self,
        *,
        QueueUrl: str = _UNSET,
        AttributeNames: Sequence[str] = _UNSET,
        MessageSystemAttributeNames: Sequence[str] = _UNSET,
        MessageAttributeNames: Sequence[str] = _UNSET,
        MaxNumberOfMessages: int = _UNSET,
        VisibilityTimeout: int = _UNSET,
        WaitTimeSeconds: int = _UNSET,
        ReceiveRequestAttemptId: str = _UNSET,
    ) -> dict[str, Any]:
        if not (
            isinstance(QueueUrl, str)
            and (AttributeNames is _UNSET or isinstance(AttributeNames, (list, tuple)))
            and (
                MessageSystemAttributeNames is _UNSET
                or isinstance(MessageSystemAttributeNames, (list, tuple))
            )
            and (
                MessageAttributeNames is _UNSET or isinstance(MessageAttributeNames, (list, tuple))
            )
            and (MaxNumberOfMessages is _UNSET or isinstance(MaxNumberOfMessages, int))
            and (VisibilityTimeout is _UNSET or isinstance(VisibilityTimeout, int))
            and (WaitTimeSeconds is _UNSET or isinstance(WaitTimeSeconds, int))
            and (ReceiveRequestAttemptId is _UNSET or isinstance(ReceiveRequestAttemptId, str))
        ):
            raise _reject(
                "ReceiveMessage",
                QueueUrl=QueueUrl,
                AttributeNames=AttributeNames,
                MessageSystemAttributeNames=MessageSystemAttributeNames,
                MessageAttributeNames=MessageAttributeNames,
                MaxNumberOfMessages=MaxNumberOfMessages,
                VisibilityTimeout=VisibilityTimeout,
                WaitTimeSeconds=WaitTimeSeconds,
                ReceiveRequestAttemptId=ReceiveRequestAttemptId,
            )
        q = self._registry.queue(QueueUrl)
        count, visibility, wait, attempt_id = _receive_options(
            q, MaxNumberOfMessages, VisibilityTimeout, WaitTimeSeconds, ReceiveRequestAttemptId
        )
        system_names, attribute_filter = _receive_filters(
            AttributeNames, MessageSystemAttributeNames, MessageAttributeNames
        )
        received = q.receive(count, visibility, wait, attempt_id)
        if not received:
            return self._ok({})
        return self._ok({"Messages": q.render(received, system_names, attribute_filter)})

    # -- sqsw's own shortcuts (not SQS operations) ------------------------------------

    @_operation("ReceiveMessage")
    def receive_message_rows(
        self,
        *,
        QueueUrl: str = _UNSET,
        MaxNumberOfMessages: int = _UNSET,
        WaitTimeSeconds: int = _UNSET,
    ) -> dict[str, Any]:
        """``ReceiveMessage`` with every attribute, as sqsw's workers receive, answered
        with ``Rows`` instead of ``Messages``: one tuple per message, ``(MessageId,
        ReceiptHandle, Body, MD5OfBody, Attributes, MessageAttributes)``, the same
        values and fresh dicts as :meth:`receive_message` gives. Not an SQS operation:
        sqsw's core uses it on this session to skip building and reading the response
        dicts (see the README). Errors are ``ReceiveMessage``'s."""
        if not (
            isinstance(QueueUrl, str)
            and (MaxNumberOfMessages is _UNSET or isinstance(MaxNumberOfMessages, int))
            and (WaitTimeSeconds is _UNSET or isinstance(WaitTimeSeconds, int))
        ):
            raise _reject(
                "ReceiveMessage",
                QueueUrl=QueueUrl,
                MaxNumberOfMessages=MaxNumberOfMessages,
                WaitTimeSeconds=WaitTimeSeconds,
            )
        q = self._registry.queue(QueueUrl)
        count, visibility, wait, _ = _receive_options(
            q, MaxNumberOfMessages, _UNSET, WaitTimeSeconds, _UNSET
        )
        return {"Rows": q.rows(q.receive(count, visibility, wait, None))}

    @_operation("DeleteMessageBatch")
    def delete_message_handles(
        self, *, QueueUrl: str = _UNSET, ReceiptHandles: Sequence[str] = _UNSET
    ) -> dict[str, Any]:
        """``DeleteMessageBatch`` of 1 to 10 receipt handles, without entries: ``Failed``
        lists the refused ones as ``DeleteMessageBatch`` does, each ``Id`` the handle's
        index. Not an SQS operation (see :meth:`receive_message_rows`)."""
        if not (
            isinstance(QueueUrl, str)
            and type(ReceiptHandles) is list
            and 0 < len(ReceiptHandles) <= MAX_BATCH_ENTRIES
            and all(type(h) is str for h in ReceiptHandles)
        ):
            raise SQSError(
                "InvalidParameterValue",
                "ReceiptHandles must be a list of 1 to 10 receipt handles.",
            )
        errors = self._registry.queue(QueueUrl).delete(ReceiptHandles)
        return {
            "Failed": [
                _failed_entry(str(i), error) for i, error in enumerate(errors) if error is not None
            ]
        }

    # -- deleting and changing visibility -------------------------------------------

    @_operation("DeleteMessage")
    def delete_message(
        self, *, QueueUrl: str = _UNSET, ReceiptHandle: str = _UNSET
    ) -> dict[str, Any]:
        if not (isinstance(QueueUrl, str) and isinstance(ReceiptHandle, str)):
            raise _reject("DeleteMessage", QueueUrl=QueueUrl, ReceiptHandle=ReceiptHandle)
        (error,) = self._registry.queue(QueueUrl).delete([ReceiptHandle])
        if error is not None:
            raise error
        return self._ok({})

    @_operation("DeleteMessageBatch")
    def delete_message_batch(
        self, *, QueueUrl: str = _UNSET, Entries: Sequence[Mapping[str, Any]] = _UNSET
    ) -> dict[str, Any]:
        q = self._queue("DeleteMessageBatch", QueueUrl)
        # fast path: entries are dicts of exactly Id and ReceiptHandle, both str
        ids: list[str] = []
        handles: list[str] = []
        if type(Entries) is list and 0 < len(Entries) <= MAX_BATCH_ENTRIES:
            for e in Entries:
                if type(e) is not dict or len(e) != 2:
                    break
                entry_id = e.get("Id")
                handle = e.get("ReceiptHandle")
                if type(entry_id) is not str or type(handle) is not str:
                    break
                ids.append(entry_id)
                handles.append(handle)
            else:
                if not _known_batch_ids(ids):
                    check_batch_ids(Entries, "DeleteMessageBatchRequestEntry")
                    _remember_batch_ids(ids)
                errors = q.delete(handles)
                if errors.count(None) == len(errors):
                    return self._ok({"Successful": [{"Id": i} for i in ids]})
                return self._ok(_batch_result(Entries, errors))
        try:
            if not isinstance(Entries, (list, tuple)):
                raise TypeError
            entries = list(Entries)
            handles = []
            for e in entries:
                handle = e["ReceiptHandle"]
                if not (
                    e.keys() <= _DELETE_ENTRY_KEYS
                    and isinstance(handle, str)
                    and isinstance(e["Id"], str)
                ):
                    raise TypeError
                handles.append(handle)
        except (KeyError, TypeError, AttributeError):
            validate_params("DeleteMessageBatch", _given(QueueUrl=QueueUrl, Entries=Entries))
            raise
        check_batch_ids(entries, "DeleteMessageBatchRequestEntry")
        return self._ok(_batch_result(entries, q.delete(handles)))

    @_operation("ChangeMessageVisibility")
    def change_message_visibility(
        self,
        *,
        QueueUrl: str = _UNSET,
        ReceiptHandle: str = _UNSET,
        VisibilityTimeout: int = _UNSET,
    ) -> dict[str, Any]:
        if not (
            isinstance(QueueUrl, str)
            and isinstance(ReceiptHandle, str)
            and isinstance(VisibilityTimeout, int)
        ):
            raise _reject(
                "ChangeMessageVisibility",
                QueueUrl=QueueUrl,
                ReceiptHandle=ReceiptHandle,
                VisibilityTimeout=VisibilityTimeout,
            )
        (error,) = self._registry.queue(QueueUrl).change_visibility(
            [(ReceiptHandle, VisibilityTimeout)]
        )
        if error is not None:
            raise error
        return self._ok({})

    @_operation("ChangeMessageVisibilityBatch")
    def change_message_visibility_batch(
        self, *, QueueUrl: str = _UNSET, Entries: Sequence[Mapping[str, Any]] = _UNSET
    ) -> dict[str, Any]:
        q = self._queue("ChangeMessageVisibilityBatch", QueueUrl)
        try:
            if not isinstance(Entries, (list, tuple)):
                raise TypeError
            entries = list(Entries)
            pairs = []
            for e in entries:
                handle, timeout = e["ReceiptHandle"], e.get("VisibilityTimeout", 0)
                if not (
                    e.keys() <= _CHANGE_ENTRY_KEYS
                    and isinstance(handle, str)
                    and isinstance(timeout, int)
                    and isinstance(e["Id"], str)
                ):
                    raise TypeError
                pairs.append((handle, timeout))
        except (KeyError, TypeError, AttributeError):
            validate_params(
                "ChangeMessageVisibilityBatch", _given(QueueUrl=QueueUrl, Entries=Entries)
            )
            raise
        check_batch_ids(entries, "ChangeMessageVisibilityBatchRequestEntry")
        return self._ok(_batch_result(entries, q.change_visibility(pairs)))

    # -- message move tasks ---------------------------------------------------------

    @_operation("StartMessageMoveTask")
    def start_message_move_task(
        self,
        *,
        SourceArn: str = _UNSET,
        DestinationArn: str = _UNSET,
        MaxNumberOfMessagesPerSecond: int = _UNSET,
    ) -> dict[str, Any]:
        validate_params(
            "StartMessageMoveTask",
            _given(
                SourceArn=SourceArn,
                DestinationArn=DestinationArn,
                MaxNumberOfMessagesPerSecond=MaxNumberOfMessagesPerSecond,
            ),
        )
        task = start_move_task(
            self._registry,
            SourceArn,
            None if DestinationArn is _UNSET else DestinationArn,
            None if MaxNumberOfMessagesPerSecond is _UNSET else MaxNumberOfMessagesPerSecond,
            int(self._wall_clock() * 1000),
        )
        return self._ok({"TaskHandle": task.handle})

    @_operation("ListMessageMoveTasks")
    def list_message_move_tasks(
        self, *, SourceArn: str = _UNSET, MaxResults: int = _UNSET
    ) -> dict[str, Any]:
        validate_params("ListMessageMoveTasks", _given(SourceArn=SourceArn, MaxResults=MaxResults))
        tasks = list_move_tasks(
            self._registry, SourceArn, 1 if MaxResults is _UNSET else MaxResults
        )
        return self._ok({"Results": [t.entry() for t in tasks]} if tasks else {})

    @_operation("CancelMessageMoveTask")
    def cancel_message_move_task(self, *, TaskHandle: str = _UNSET) -> dict[str, Any]:
        validate_params("CancelMessageMoveTask", _given(TaskHandle=TaskHandle))
        task = cancel_move_task(self._registry, TaskHandle)
        return self._ok({"ApproximateNumberOfMessagesMoved": task.moved})


def _failed_entry(entry_id: str, error: SQSError) -> dict[str, Any]:
    """A batch ``Failed`` entry."""
    return {"Id": entry_id, "SenderFault": True, "Code": error.code, "Message": error.message}


def _batch_body(successful: list[dict[str, Any]], failed: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch response: its ``Successful`` and ``Failed`` entries, each only if any."""
    body: dict[str, Any] = {}
    if successful:
        body["Successful"] = successful
    if failed:
        body["Failed"] = failed
    return body


def _batch_result(
    entries: list[Mapping[str, Any]], errors: list[SQSError | None]
) -> dict[str, Any]:
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for e, error in zip(entries, errors, strict=True):
        if error is None:
            successful.append({"Id": e["Id"]})
        else:
            failed.append(_failed_entry(e["Id"], error))
    return _batch_body(successful, failed)
