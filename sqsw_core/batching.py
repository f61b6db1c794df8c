"""Batch reads, where sqs-workers users import them from (``sqs_workers.batching``).

``sqs.queue("emails", batching_policy=BatchMessages(batch_size=10))`` makes each
``@queue.processor`` of the queue receive a list of up to 10 jobs; it is a bulk
processor underneath (see :mod:`sqsw_core.bulk_jobs` and the README's "Bulk
processors").
"""

from sqsw_core.bulk_jobs import BatchingConfiguration, BatchMessages, NoBatching

__all__ = ["BatchMessages", "BatchingConfiguration", "NoBatching"]
