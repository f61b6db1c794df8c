"""sqsw-deadletter: dead-letter queues (queue type ``deadletter``) and redrive.

::

    from sqsw_core import SQSEnv
    from sqsw_core.shutdown_policies import IdleShutdown
    from sqsw_deadletter import DeadLetterQueue, RedriveFilter

    env = SQSEnv()
    foo = env.queue("foo")
    foo_dead = env.queue("foo_dead", DeadLetterQueue.maker(foo))
    foo_dead.process_queue(shutdown_policy=IdleShutdown(10))     # push everything back

    foo_dead.dry_run(RedriveFilter(job_name="send_email"))       # what would move
    foo_dead.push_back(RedriveFilter(job_name="send_email"))     # move only those
    foo_dead.start_redrive(max_messages_per_second=50)           # let SQS move them
"""

from sqsw_deadletter.deadletter_queue import DeadLetterQueue, RedriveReport
from sqsw_deadletter.exceptions import NoRedriveRunningError, PushBackError
from sqsw_deadletter.move_tasks import RedriveTask
from sqsw_deadletter.push_back import push_back_entry, redrive_deduplication_id
from sqsw_deadletter.selection import RedriveCandidate, RedriveFilter

__version__ = "0.1.0"

__all__ = [
    "DeadLetterQueue",
    "NoRedriveRunningError",
    "PushBackError",
    "RedriveCandidate",
    "RedriveFilter",
    "RedriveReport",
    "RedriveTask",
    "push_back_entry",
    "redrive_deduplication_id",
]
