"""Per-message receive+delete cost of the in-memory SQS by queue depth (no scan per receive).

    .venv/bin/python benchmarks/memory_receive_scaling.py [--small 1000] [--large 20000]

Fills a standard and a FIFO queue (7 groups) with ``--small`` and ``--large``
messages and drains each with receive(10) + delete_message_batch, best of
``--repeat`` runs. The small queue is the baseline, measured in the same run:
a receive that scanned the queue would make the large one about large/small
times slower per message; a flat cost gives a ratio near 1. (This was a
wall-clock assertion in tests/test_sqs_fidelity.py.)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqsw_memory import MemorySession


def receive_all_seconds(n: int, fifo: bool) -> float:
    """Seconds to receive and delete ``n`` messages from a queue that holds them all."""
    sqs: Any = MemorySession().client("sqs")
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    name = "scale.fifo" if fifo else "scale"
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    for i in range(0, n, 10):
        entries: list[dict[str, Any]] = [
            {"Id": str(j), "MessageBody": f"m{i + j}"} for j in range(10)
        ]
        if fifo:
            for j, entry in enumerate(entries):
                entry["MessageGroupId"] = f"g{(i + j) % 7}"
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    started = time.perf_counter()
    got = 0
    while got < n:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert messages, f"queue drained early: {got} of {n}"
        got += len(messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(messages)
            ],
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for fifo in (False, True):
        kind = "fifo" if fifo else "standard"
        small = min(receive_all_seconds(args.small, fifo) for _ in range(args.repeat))
        large = min(receive_all_seconds(args.large, fifo) for _ in range(args.repeat))
        per_small = small / args.small * 1e6
        per_large = large / args.large * 1e6
        print(
            f"{kind:8s} {args.small:>7,} msgs: {per_small:6.1f} us/msg (baseline)   "
            f"{args.large:>7,} msgs: {per_large:6.1f} us/msg   x{per_large / per_small:4.2f}"
        )


if __name__ == "__main__":
    main()
