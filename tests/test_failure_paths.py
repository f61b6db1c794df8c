"""Failure paths before and around a job: async functions, batch reports, due times,
contexts, bad attributes and overlong values.

Every failure here must end the same way, on both backends: the message is not
acked, it comes back after the backoff delay (never at once), its receive count
grows by one per delivery, and the log says what was wrong in a readable line.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sqsw_cloudwatch import CloudWatchEvent
from sqsw_core import (
    BulkJobsFailed,
    ConfigurationError,
    ConstantBackoff,
    JobQueue,
    Message,
    SQSEnv,
    create_standard_queue,
)

#: The backoff of every queue here: long enough to tell from "at once" on
#: LocalStack (whose timers tick about once a second), short enough for tests.
BACKOFF = 2
#: Deliveries before SQS moves a message to the dead-letter queue.
MAX_RECEIVES = 3
#: A log line quoting a 10,000-character value must stay under this.
LOG_LINE_LIMIT = 400


# -- helpers -------------------------------------------------------------------


def make_queue(sqs: SQSEnv, name: str = "jobs", queue_type: str = "job") -> JobQueue:
    """A queue with a dead-letter queue (after 3 deliveries) and a 2 s backoff.

    (A raw queue, for ``queue_type="raw"``, though typed as a job queue.)
    """
    create_standard_queue(sqs, f"{name}_dead")
    create_standard_queue(
        sqs,
        name,
        visibility_timeout=30,
        redrive_policy=sqs.redrive_policy(f"{name}_dead", MAX_RECEIVES),
    )
    queue: JobQueue = sqs.queue(name, queue_type, backoff_policy=ConstantBackoff(BACKOFF))
    return queue


def counts(sqs: SQSEnv, name: str) -> tuple[int, int]:
    """(visible, in flight) messages of queue ``name``."""
    attributes = sqs.sqs_client.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def wait_for_counts(sqs: SQSEnv, name: str, expected: tuple[int, int]) -> tuple[int, int]:
    """``counts()`` once they equal ``expected`` (LocalStack's counters lag), or the last seen."""
    deadline = time.monotonic() + 3
    seen = counts(sqs, name)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = counts(sqs, name)
    return seen


def send_job(
    sqs: SQSEnv,
    queue: JobQueue,
    body: str,
    *,
    job_name: str = "job",
    content_type: str = "json",
    context: str | None = None,
    **attributes: str,
) -> str:
    """Send a job message as a producer with its own ideas would; returns its id."""
    message_attributes = {
        "ContentType": {"DataType": "String", "StringValue": content_type},
        "JobName": {"DataType": "String", "StringValue": job_name},
    }
    if context is not None:
        message_attributes["JobContext"] = {"DataType": "String", "StringValue": context}
    for key, value in attributes.items():
        message_attributes[key] = {"DataType": "String", "StringValue": value}
    response = sqs.sqs_client.send_message(
        QueueUrl=queue.url, MessageBody=body, MessageAttributes=message_attributes
    )
    return str(response["MessageId"])


def process(queue: JobQueue, expect: int, timeout: float = 15) -> tuple[int, int, float]:
    """Process batches until ``expect`` messages were counted; (succeeded, failed, when).

    ``when`` is the time the last of them was settled.
    """
    succeeded = failed = 0
    deadline = time.monotonic() + timeout
    memory = type(queue.env.session).__name__ == "MemorySession"
    while succeeded + failed < expect:
        assert time.monotonic() < deadline, f"only {succeeded + failed} of {expect} processed"
        result = queue.process_batch(wait_seconds=0 if memory else 1)
        succeeded += result.succeeded_count()
        failed += result.failed_count()
        if memory and not result.total_count():
            time.sleep(0.05)
    return succeeded, failed, time.monotonic()


def receive_again(queue: JobQueue, expect: int, timeout: float = 15) -> list[Message]:
    """Receive (without processing) until ``expect`` messages came back."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect:
        assert time.monotonic() < deadline, f"only {len(got)} of {expect} came back"
        got += queue.get_raw_messages(wait_seconds=1)
    return got


def assert_retried_after_backoff(
    sqs: SQSEnv, queue: JobQueue, failed: int, failed_at: float, receive_count: int = 2
) -> list[Message]:
    """The ``failed`` messages are hidden for the backoff, then come back once more,
    not earlier; none was acked or dead-lettered."""
    assert wait_for_counts(sqs, queue.name, (0, failed)) == (0, failed)
    back = receive_again(queue, failed)
    assert time.monotonic() - failed_at >= BACKOFF - 0.5, "came back before the backoff"
    assert [m.receive_count for m in back] == [receive_count] * failed
    assert counts(sqs, f"{queue.name}_dead") == (0, 0)
    return back


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("sqsw")]


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="sqsw"):
        yield caplog


# -- async job functions ---------------------------------------------------------


async def async_job(n: int = 0) -> None:
    await asyncio.sleep(0)


async def async_generator_job(n: int = 0) -> Any:
    yield n


class AsyncCallable:
    async def __call__(self, n: int = 0) -> None:
        await asyncio.sleep(0)


class Service:
    async def handle(self, n: int = 0) -> None:
        await asyncio.sleep(0)


ASYNC_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "async def": async_job,
    "partial": functools.partial(async_job, n=1),
    "async __call__": AsyncCallable(),
    "bound method": Service().handle,
    "async generator": async_generator_job,
}

REGISTRATIONS: dict[str, Callable[[SQSEnv, Callable[..., Any]], Any]] = {
    "queue.processor": lambda sqs, fn: sqs.queue("jobs").processor("x")(fn),
    "sqs.processor": lambda sqs, fn: sqs.processor("jobs", "x")(fn),
    "connect_processor": lambda sqs, fn: sqs.queue("jobs").connect_processor("x", fn),
    "bulk_processor": lambda sqs, fn: sqs.queue("jobs").bulk_processor("x")(fn),
    "raw_processor": lambda sqs, fn: sqs.queue("cron", "raw").raw_processor()(fn),
}


@pytest.mark.parametrize("registration", list(REGISTRATIONS))
@pytest.mark.parametrize("kind", list(ASYNC_FUNCTIONS))
def test_async_functions_register_and_async_generators_are_refused(
    sqs: SQSEnv, kind: str, registration: str
) -> None:
    """Coroutine functions register everywhere (they run on the job loop); an async
    generator is never a job: refused when registered, in one line."""
    if kind != "async generator":
        REGISTRATIONS[registration](sqs, ASYNC_FUNCTIONS[kind])
        return
    with pytest.raises(ConfigurationError) as refused:
        REGISTRATIONS[registration](sqs, ASYNC_FUNCTIONS[kind])
    text = str(refused.value)
    assert "\n" not in text
    assert " is an async generator function" in text
    assert "yields values instead of doing one job" in text
    jobs = sqs.queue("jobs")
    assert "x" not in jobs.processors and "x" not in jobs.bulk_processors
    assert getattr(sqs.queue("cron", "raw"), "processor", None) is None


def test_a_sync_wrapper_running_an_async_function_runs(sqs: SQSEnv) -> None:
    queue = make_queue(sqs)
    ran: list[int] = []

    async def work(n: int) -> None:
        await asyncio.sleep(0)
        ran.append(n)

    @queue.processor("job")
    @functools.wraps(work)
    def job(n: int) -> None:
        asyncio.run(work(n))

    job.delay(n=1)
    assert process(queue, 1)[:2] == (1, 0)
    assert ran == [1]
    assert wait_for_counts(sqs, "jobs", (0, 0)) == (0, 0)


def test_a_sync_job_returning_a_coroutine_runs_it(sqs: SQSEnv) -> None:
    """A sync function that returns a coroutine (a wrapper) is an async job: awaited."""
    queue = make_queue(sqs)
    ran: list[int] = []

    async def work(n: int) -> None:
        await asyncio.sleep(0)
        ran.append(n)

    queue.processor("job")(lambda n: work(n))
    send_job(sqs, queue, '{"n": 3}')
    assert process(queue, 1)[:2] == (1, 0)
    assert ran == [3]
    assert wait_for_counts(sqs, "jobs", (0, 0)) == (0, 0)


@pytest.mark.parametrize("handler", ["batch job", "raw"])
def test_a_bulk_or_raw_handler_returning_a_coroutine_runs_it(sqs: SQSEnv, handler: str) -> None:
    """A bulk or raw handler that returns a coroutine (a sync wrapper of an async one) is
    awaited on the job loop, like an async def handler."""
    queue = make_queue(sqs, "jobs", "raw" if handler == "raw" else "job")
    ran: list[int] = []

    async def work() -> None:
        await asyncio.sleep(0)
        ran.append(1)

    if handler == "batch job":
        queue.bulk_processor("job")(lambda jobs: work())
    else:
        queue.raw_processor()(lambda message: work())  # type: ignore[attr-defined]
    send_job(sqs, queue, '{"n": 1}')
    assert process(queue, 1)[:2] == (1, 0)
    assert ran == [1]
    assert wait_for_counts(sqs, "jobs", (0, 0)) == (0, 0)


@pytest.mark.parametrize("handler", ["job", "batch job", "raw"])
def test_a_handler_returning_an_async_generator_fails_with_backoff(
    sqs: SQSEnv, errors: pytest.LogCaptureFixture, handler: str
) -> None:
    """An async generator returned by a handler is not a job: it fails, never acked."""
    queue = make_queue(sqs, "jobs", "raw" if handler == "raw" else "job")

    async def gen() -> Any:
        yield 1

    if handler == "job":
        queue.processor("job")(lambda n: gen())
    elif handler == "batch job":
        queue.bulk_processor("job")(lambda jobs: gen())
    else:
        queue.raw_processor()(lambda message: gen())  # type: ignore[attr-defined]
    send_job(sqs, queue, '{"n": 1}')
    succeeded, failed, failed_at = process(queue, 1)
    assert (succeeded, failed) == (0, 1)
    assert "returned async_generator, an async generator, which is not a job" in errors.text
    assert_retried_after_backoff(sqs, queue, 1, failed_at)


# -- bulk processors: unclear failure reports -------------------------------------


def report(value: Any) -> Callable[[list[dict[str, Any]]], Any]:
    def index(jobs: list[dict[str, Any]]) -> Any:
        return value

    return index


def raise_failed(failed: Any) -> Callable[[list[dict[str, Any]]], Any]:
    def index(jobs: list[dict[str, Any]]) -> Any:
        raise BulkJobsFailed(failed)

    return index


UNCLEAR_REPORTS: dict[str, tuple[Callable[[list[dict[str, Any]]], Any], str]] = {
    "negative index": (report([-1]), "returned [-1], where [-1] are not job indices"),
    "index past the end": (report([5]), "returned [5], where [5] are not job indices"),
    "flags": (report([True, True, False]), "[True, True, False] are not job indices"),
    "float": (report([0.0]), "[0.0] are not job indices"),
    "not a list": (report(7), "returned 7 for a call with"),
    "a string": (report("0"), "returned '0' for a call with"),
    "False": (report(False), "returned False for a call with"),
    "BulkJobsFailed out of range": (
        raise_failed({5: ValueError("five")}),
        "raised BulkJobsFailed([5]), where [5] are not job indices",
    ),
    "BulkJobsFailed naming no job": (raise_failed([]), "raised BulkJobsFailed naming no job"),
}


def test_an_unclear_batch_report_retries_the_whole_batch(
    sqs: SQSEnv, errors: pytest.LogCaptureFixture
) -> None:
    """Every kind of unclear report at once: one batch job per kind, three jobs each."""
    queue = make_queue(sqs)
    jobs = 3 * len(UNCLEAR_REPORTS)
    with queue.add_batch():
        for case, (fn, _) in UNCLEAR_REPORTS.items():
            task = queue.bulk_processor(f"index {case}")(fn)
            for n in range(3):
                task.delay(n=n)
    succeeded, failed, failed_at = process(queue, jobs)
    assert (succeeded, failed) == (0, jobs)
    assert "every job of the call is retried" in errors.text
    for case, (_, shown) in UNCLEAR_REPORTS.items():
        assert f"bulk processor of job 'index {case}' on queue 'jobs'" in errors.text, case
        assert shown in errors.text, case
    back = assert_retried_after_backoff(sqs, queue, jobs, failed_at)
    by_job: dict[str | None, list[int]] = {}
    for message in back:
        by_job.setdefault(message.job_name, []).append(sqs.decode_job(message)[0]["n"])
    assert {name: sorted(ns) for name, ns in by_job.items()} == {
        f"index {case}": [0, 1, 2] for case in UNCLEAR_REPORTS
    }


@pytest.mark.parametrize("how", ["returned", "raised"])
def test_a_clear_batch_report_retries_only_the_jobs_it_names(sqs: SQSEnv, how: str) -> None:
    queue = make_queue(sqs)

    @queue.bulk_processor("index")
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        failed = [i for i, job in enumerate(jobs) if job["n"] == 1] * 2  # duplicates are fine
        if how == "raised" and failed:
            raise BulkJobsFailed({i: ValueError("one") for i in failed})
        return failed

    with queue.add_batch():
        for n in range(3):
            index.delay(n=n)
    succeeded, failed, failed_at = process(queue, 3)
    assert (succeeded, failed) == (2, 1)
    back = assert_retried_after_backoff(sqs, queue, 1, failed_at)
    assert sqs.decode_job(back[0])[0] == {"n": 1}


def test_a_single_message_of_a_batch_job_with_an_unclear_report_fails(sqs: SQSEnv) -> None:
    """The one-message path (a batch job's message run on its own) fails it too."""
    queue = make_queue(sqs)
    task = queue.bulk_processor("index")(report([3]))
    task.delay(n=0)
    (message,) = receive_again(queue, 1)
    assert queue.runner.process_message(message) is False
    queue.runner.acker.flush()
    assert_retried_after_backoff(sqs, queue, 1, time.monotonic())


# -- due times (SqswDueAt) -------------------------------------------------------


def hundred_years_ahead() -> str:
    return str(int((time.time() + 100 * 365 * 86400) * 1000))


BAD_DUE_TIMES: dict[str, tuple[Callable[[], str], str]] = {
    "overflow": (lambda: "1" + "0" * 400, "not a due time in epoch milliseconds"),
    "100 years ahead": (hundred_years_ahead, "days ahead: more than the 14 days"),
    "words": (lambda: "tomorrow", "'tomorrow', not a due time in epoch milliseconds"),
    "fraction": (lambda: "1700000000000.5", "not a due time in epoch milliseconds"),
}


def test_a_bad_due_time_fails_with_backoff_and_the_batch_runs(
    sqs: SQSEnv, errors: pytest.LogCaptureFixture
) -> None:
    """One batch: a message with each kind of bad due time, and four good jobs."""
    queue = make_queue(sqs)
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)

    cases = list(BAD_DUE_TIMES)
    bad = len(cases)
    entries = []
    for n in range(bad + 4):
        attributes = {
            "ContentType": {"DataType": "String", "StringValue": "json"},
            "JobName": {"DataType": "String", "StringValue": "job"},
        }
        if n < bad:
            due = BAD_DUE_TIMES[cases[n]][0]()
            attributes["SqswDueAt"] = {"DataType": "String", "StringValue": due}
        entries.append(
            {"Id": str(n), "MessageBody": f'{{"n": {n}}}', "MessageAttributes": attributes}
        )
    response = sqs.sqs_client.send_message_batch(QueueUrl=queue.url, Entries=entries)
    bad_ids = {
        e["MessageId"]: cases[int(e["Id"])] for e in response["Successful"] if int(e["Id"]) < bad
    }
    succeeded, failed, failed_at = process(queue, bad + 4)
    assert (succeeded, failed) == (4, bad)
    good = list(range(bad, bad + 4))
    assert sorted(ran) == good
    assert wait_for_counts(sqs, "jobs", (0, bad)) == (0, bad)  # the good ones were acked
    for bad_id, case in bad_ids.items():
        lines = [line for line in log_lines(errors) if bad_id in line]
        problem = BAD_DUE_TIMES[case][1]
        assert lines and all("SqswDueAt" in line and problem in line for line in lines), case
        assert all("'jobs'" in line or " jobs" in line for line in lines), case
    assert max(len(line) for line in log_lines(errors)) < LOG_LINE_LIMIT
    # Not a hot loop: over 3 s with a 2 s backoff each runs at most twice more...
    deliveries = dict.fromkeys(bad_ids, 1)
    memory = type(sqs.session).__name__ == "MemorySession"
    while time.monotonic() < failed_at + 3:
        result = queue.process_batch(wait_seconds=0 if memory else 1)
        assert result.succeeded_count() == 0
        for message in result.failed:
            deliveries[message.message_id] += 1
        if memory:
            time.sleep(0.05)
    assert max(deliveries.values()) <= 2, deliveries
    assert sorted(ran) == good
    # ...and each delivery counts once, on its way to the dead-letter queue.
    back = receive_again(queue, bad)
    assert {m.message_id: m.receive_count for m in back} == {
        bad_id: count + 1 for bad_id, count in deliveries.items()
    }
    assert counts(sqs, "jobs_dead") == (0, 0)


def test_a_good_due_time_is_still_held_back(sqs: SQSEnv) -> None:
    """A due time 10 s ahead is a long delay, not a bad message."""
    queue = make_queue(sqs)
    ran: list[int] = []
    queue.processor("job")(lambda n: ran.append(n))
    due = str(int((time.time() + 10) * 1000))
    send_job(sqs, queue, '{"n": 1}', SqswDueAt=due)
    result = queue.process_batch(wait_seconds=1)
    assert result.total_count() == 0 and ran == []


# -- job contexts ----------------------------------------------------------------


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
def test_a_job_changing_its_context_changes_nothing_for_the_next_job(
    sqs: SQSEnv, nested: bool
) -> None:
    queue = make_queue(sqs)
    seen: list[Any] = []

    @queue.processor("job", pass_context=True)
    def job(n: int, context: Any = None) -> None:
        seen.append(copy.deepcopy(dict(context)))
        if nested:
            context["user"]["roles"].append("admin")
        context["tenant"] = "changed"
        context["added"] = n

    sent: dict[str, Any] = {"tenant": "acme"}
    if nested:
        sent["user"] = {"id": 7, "roles": ["reader"]}
    with sqs.context(**sent), queue.add_batch():
        for n in range(3):
            job.delay(n=n)
    assert process(queue, 3)[:2] == (3, 0)
    assert seen == [sent] * 3


# -- attributes that cannot be read ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "context", "says"),
    [
        ('{"n": 1}', "{not json", "bad JobContext attribute of message"),
        ('{"n": 1}', "[1, 2]", "bad JobContext attribute of message"),
        ("[1, 2]", "{}", "the arguments of message"),
    ],
    ids=["context not json", "context not a dict", "arguments not a dict"],
)
def test_bad_attributes_say_what_is_wrong(
    sqs: SQSEnv, errors: pytest.LogCaptureFixture, body: str, context: str, says: str
) -> None:
    queue = make_queue(sqs)
    queue.processor("job")(lambda n: None)
    message_id = send_job(sqs, queue, body, context=context)
    succeeded, failed, failed_at = process(queue, 1)
    assert (succeeded, failed) == (0, 1)
    (line,) = [line for line in log_lines(errors) if message_id in line]
    assert says in line
    if "JobContext" in says:
        assert "arguments" not in line and "cannot decode message" not in line
    else:
        assert "JobContext" not in line and "decoded to list, not a dict" in line
    assert_retried_after_backoff(sqs, queue, 1, failed_at)


# -- values from messages in log lines ----------------------------------------------

LONG = 10_000


@pytest.mark.parametrize("value", ["job name", "content type", "due time", "event field"])
def test_long_values_from_a_message_are_cut_in_log_lines(
    sqs: SQSEnv, errors: pytest.LogCaptureFixture, value: str
) -> None:
    queue = make_queue(sqs, "jobs", "raw" if value == "event field" else "job")
    if value == "event field":

        @queue.raw_processor()  # type: ignore[attr-defined, untyped-decorator]
        def tick(event: CloudWatchEvent) -> None:
            pass

        event = {key: "x" for key in ("version", "id", "detail-type", "source", "account")}
        event.update(time="2024-01-01T00:00:00Z", region="eu-west-1", detail="d" * LONG)
        sqs.sqs_client.send_message(QueueUrl=queue.url, MessageBody=json.dumps(event))
    else:
        queue.processor("job")(lambda n: None)
    if value == "event field":
        pass
    elif value == "job name":
        send_job(sqs, queue, '{"n": 1}', job_name="j" * LONG)
    elif value == "content type":
        send_job(sqs, queue, '{"n": 1}', content_type="c" * LONG)
    else:
        send_job(sqs, queue, '{"n": 1}', SqswDueAt="9" * LONG)
    succeeded, failed, failed_at = process(queue, 1)
    assert (succeeded, failed) == (0, 1)
    lines = log_lines(errors)
    assert lines and max(len(line) for line in lines) < LOG_LINE_LIMIT
    assert any("more characters)" in line for line in lines)
    assert_retried_after_backoff(sqs, queue, 1, failed_at)
