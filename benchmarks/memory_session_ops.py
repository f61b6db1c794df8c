"""Per-message cost of the in-memory SQS calls sqsw's hot path makes.

    .venv/bin/python benchmarks/memory_session_ops.py [--sizes 20000,100000] [--repeat 3]

For each size: fill a standard queue with ``send_message_batch`` (10 entries, three
String message attributes each, as sqsw sends jobs), then drain it with
``receive_message`` (10, all attributes) + ``delete_message_batch``, exactly as
sqsw's ``process_batch`` calls them. Prints the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from sqsw_memory import MemorySession

ATTRIBUTES = {
    "ContentType": {"DataType": "String", "StringValue": "json"},
    "JobName": {"DataType": "String", "StringValue": "noop"},
    "JobContext": {"DataType": "String", "StringValue": "{}"},
}


def run(n: int) -> tuple[float, float]:
    """Seconds to send ``n`` messages, and to receive and delete them all."""
    c: Any = MemorySession().client("sqs")
    url = c.create_queue(QueueName="bench")["QueueUrl"]
    batches = [
        [
            {"Id": str(j), "MessageBody": f'{{"i": {i + j}}}', "MessageAttributes": ATTRIBUTES}
            for j in range(10)
        ]
        for i in range(0, n, 10)
    ]
    gc.collect()
    t0 = time.perf_counter()
    for entries in batches:
        c.send_message_batch(QueueUrl=url, Entries=entries)
    t1 = time.perf_counter()
    received = 0
    while True:
        r = c.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = r.get("Messages")
        if not messages:
            break
        received += len(messages)
        c.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    t2 = time.perf_counter()
    assert received == n, (received, n)
    return t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'n':>8}  {'op':<16} {'msgs/s':>12} {'µs/msg':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        runs = [run(n) for _ in range(args.repeat)]
        for label, seconds in (
            ("send (batch 10)", min(r[0] for r in runs)),
            ("receive+delete", min(r[1] for r in runs)),
        ):
            print(f"{n:>8}  {label:<16} {n / seconds:>12,.0f} {seconds / n * 1e6:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
