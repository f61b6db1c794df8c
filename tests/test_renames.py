"""Names from before the layout change still work (README, "Renamed in 0.2").

Runs on the memory session and on LocalStack; the bulk job is checked by what SQS holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqsw_core
from sqsw_cloudwatch import RawQueue
from sqsw_core import SQSEnv, create_standard_queue
from sqsw_otel import BATCH_JOBS_FAILED, BULK_JOBS_FAILED
from tests.helpers import expect_counts, poll


def test_batch_processor_is_bulk_processor_with_max_batch(make_env: Callable[..., SQSEnv]) -> None:
    sqs = make_env()
    create_standard_queue(sqs, "old")
    queue = sqs.queue("old")
    calls: list[list[int]] = []

    @queue.batch_processor("index", max_batch=3, max_wait=0.1)
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        calls.append(sorted(job["n"] for job in jobs))
        if len(jobs) == 3:  # the first call: job n=1 fails
            raise sqsw_core.BatchJobsFailed(
                {i: None for i, job in enumerate(jobs) if job["n"] == 1}
            )
        return []

    assert queue.bulk_processors["index"].max_jobs == 3
    assert index.processor is index.fn
    with queue.add_batch():
        for n in range(3):
            index.delay(n=n)
    result = queue.process_batch(wait_seconds=poll(sqs))
    assert calls == [[0, 1, 2]]
    assert result.succeeded_count() == 2 and result.failed_count() == 1
    expect_counts(queue, (0, 1, 0), "after the call: only job 1 waits for its retry")


def test_old_exception_and_attribute_names_are_the_new_objects(sqs: SQSEnv) -> None:
    assert sqsw_core.BatchJobsFailed is sqsw_core.BulkJobsFailed
    assert sqsw_core.BatchReportError is sqsw_core.BulkReportError
    assert BATCH_JOBS_FAILED == BULK_JOBS_FAILED == "sqsw_core.bulk_jobs.BulkJobsFailed"
    assert BULK_JOBS_FAILED.rsplit(".", 1) == [
        sqsw_core.BulkJobsFailed.__module__,
        sqsw_core.BulkJobsFailed.__qualname__,
    ]
    create_standard_queue(sqs, "cron")
    cron = sqs.queue("cron", RawQueue)

    @cron.raw_processor()
    def handle(message: Any) -> None:
        pass

    assert cron.processor is cron.fn is handle
