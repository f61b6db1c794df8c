"""sqsw quickstart: a producer and a worker on the embedded in-memory SQS.

Run it with ``bash scripts/setup-dev.sh && .venv/bin/python examples/quickstart.py``.
Swap ``session="memory"`` for ``session="aws"`` (or drop it) to use real SQS.
"""

from __future__ import annotations

import logging
import random
import sys
import time

from sqsw_core import RetryJob, SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.shutdown_policies import IdleShutdown

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

sqs = SQSEnv(session="memory")
create_standard_queue(sqs, "emails_dead")
create_standard_queue(sqs, "emails", redrive_policy=sqs.redrive_policy("emails_dead", 5))
emails = sqs.queue("emails", backoff_policy=ConstantBackoff(0))

sent: dict[str, int] = {}
attempts = 0
last_sent_at = 0.0


@emails.processor("send_email", pass_context=True)
def send_email(to: str, subject: str, context: dict[str, str]) -> None:
    """Pretend to send an email; the mail server is flaky 5 % of the time."""
    global attempts, last_sent_at
    attempts += 1
    if random.random() < 0.05:
        raise RetryJob()  # retried later, never lost
    sent[to] = sent.get(to, 0) + 1
    last_sent_at = time.perf_counter()


def main(jobs: int = 2_000) -> int:
    started = time.perf_counter()
    with sqs.context(request_id="quickstart"), emails.add_batch():
        for n in range(jobs):
            send_email.delay(to=f"user{n}@example.com", subject="Hello world")
    enqueued = time.perf_counter()

    # Work until the queue has been empty for 0.2 s.
    emails.process_queue(shutdown_policy=IdleShutdown(idle_seconds=0.2), wait_seconds=0.1)
    done = last_sent_at

    print(f"enqueued {jobs:,} jobs in {enqueued - started:.2f} s")
    print(
        f"worker: {len(sent):,} emails sent once each, {attempts - jobs:,} retries, "
        f"in {done - enqueued:.2f} s ({jobs / (done - enqueued):,.0f} jobs/s)"
    )
    lost = jobs - len(sent)
    duplicates = sum(count - 1 for count in sent.values())
    print(f"lost: {lost}, duplicates: {duplicates}")
    return 0 if lost == 0 and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
