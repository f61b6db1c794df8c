"""What the action forms do: redrive selections, deletes, purges, move tasks, enqueues.

Redrive and dry runs are sqsw-deadletter's (``DeadLetterQueue.push_back`` and
``dry_run``, ``RedriveFilter``, server-side ``start_redrive``); this module turns
form fields into their arguments and their errors into one line for the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from sqsw_core.exceptions import ConfigurationError, PluginError
from sqsw_core.limits import MAX_DELAY_SECONDS
from sqsw_core.queue import JobQueue
from sqsw_core.sessions import is_process_local
from sqsw_core.tasks import AsyncTask
from sqsw_dashboard.browsing import hold_messages
from sqsw_dashboard.errors import DashboardError
from sqsw_deadletter import DeadLetterQueue, NoRedriveRunningError, RedriveFilter
from sqsw_deadletter.cli import parse_filters
from sqsw_deadletter.move_tasks import RedriveTask
from sqsw_deadletter.server_redrive import MAX_MOVE_RATE

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

__all__ = [
    "FILTER_FIELDS",
    "cancel_move_task",
    "check_enqueue",
    "dead_letter_queue",
    "delete_selected",
    "enqueue",
    "move_tasks",
    "purge",
    "receive_wait",
    "selection_from",
    "start_move_task",
]

#: Filter form fields -> ``sqsw redrive --filter`` keys (parsed by sqsw-deadletter).
FILTER_FIELDS = {
    "job": "job",
    "min_age": "min-age",
    "max_age": "max-age",
    "min_receives": "min-receives",
    "max_receives": "max-receives",
}
#: The most messages one delete or browse looks through.
SCAN_LIMIT = 1000


def receive_wait(env: SQSEnv) -> int:
    """Long-poll 1 s on a server (it may answer empty while messages exist), 0 in memory."""
    return 0 if is_process_local(env.session) else 1


def dead_letter_queue(env: SQSEnv, name: str, upstream: str | None = None) -> DeadLetterQueue:
    """A ``DeadLetterQueue`` object for ``name`` (not registered in the app's env)."""
    return DeadLetterQueue(env, name, upstream=upstream)


def selection_from(form: Mapping[str, Any], ids: list[str]) -> RedriveFilter | None:
    """The filter of a form: its filter fields and the selected message ids (``None``: all)."""
    texts: list[str] = []
    for field, key in FILTER_FIELDS.items():
        value = str(form.get(field) or "").strip()
        if not value:
            continue
        if field == "job":
            texts += [f"job={name.strip()}" for name in value.split(",") if name.strip()]
        else:
            texts.append(f"{key}={value}")
    try:
        options = parse_filters(tuple(texts))
    except click.ClickException as exc:  # sqsw-deadletter's words for its --filter flag
        message = exc.message.removeprefix("option --filter: ")
        raise DashboardError(f"Bad filter: {message}") from None
    if ids:
        wanted = frozenset(ids)
        options["predicate"] = lambda message: message.message_id in wanted
    return RedriveFilter(**options) if options else None


def delete_selected(env: SQSEnv, name: str, ids: list[str]) -> tuple[int, int]:
    """Delete the messages ``ids`` of queue ``name``: (deleted, not found)."""
    if not ids:
        raise DashboardError("Select the messages to delete first.")
    queue = dead_letter_queue(env, name)
    wanted = set(ids)
    held = hold_messages(queue, SCAN_LIMIT, wait_seconds=receive_wait(env), wanted=wanted)
    chosen = [m for m in held if m.message_id in wanted]
    others = [m for m in held if m.message_id not in wanted]
    settler = queue.runner.settler
    try:
        left = settler.discard(chosen, "it stays in the queue")
    finally:
        settler.release(others)
    return len(chosen) - left, len(wanted) - len(chosen)


def purge(env: SQSEnv, name: str, confirmation: str) -> None:
    """Purge ``name`` if ``confirmation`` is its name, typed."""
    if confirmation.strip() != name:
        raise DashboardError(
            f"Purge refused: type the queue name {name!r} in the confirmation box to delete "
            "every message of it. Nothing was deleted."
        )
    env.api.call("purge_queue", name, QueueUrl=env.get_queue_url(name))


def start_move_task(env: SQSEnv, name: str, rate_text: str) -> RedriveTask:
    """Have SQS move every message of ``name`` back to its source queue."""
    rate: int | None = None
    if rate_text.strip():
        try:
            rate = int(rate_text)
        except ValueError:
            rate = 0
        if not 1 <= rate <= MAX_MOVE_RATE:
            raise DashboardError(
                f"Bad rate {rate_text.strip()!r}: give a whole number of messages per second "
                f"from 1 to {MAX_MOVE_RATE}, or leave it empty for SQS's own pace."
            )
    queue = dead_letter_queue(env, name)
    if queue.is_fifo:
        raise DashboardError(
            f"{name} is a FIFO queue: SQS moves messages of standard queues only; use "
            "Redrive instead (this dashboard pushes them back in order)."
        )
    return queue.start_redrive(rate)


def move_tasks(env: SQSEnv, name: str) -> list[RedriveTask]:
    return dead_letter_queue(env, name).redrive_tasks(5)


def cancel_move_task(env: SQSEnv, name: str) -> int:
    try:
        return dead_letter_queue(env, name).cancel_redrive()
    except NoRedriveRunningError as exc:
        raise DashboardError(f"Nothing to cancel: {exc}.") from None


def _job_arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DashboardError(f"Arguments are not JSON: {exc}. Give a JSON object.") from None
    if not isinstance(value, dict):
        raise DashboardError(
            f"Arguments must be a JSON object of keyword arguments, got a "
            f"{type(value).__name__}: {text.strip()[:80]}"
        )
    return value


def check_enqueue(env: SQSEnv, name: str, job: str, kwargs: dict[str, Any]) -> None:
    """Refuse a job the loaded app does not have on ``name``, or arguments that do not
    fit its function's signature."""
    queue = env.queues.get(name)
    jobs: dict[str, Any] = {}
    if isinstance(queue, JobQueue):
        jobs = {**queue.bulk_processors, **queue.processors}
    if job not in jobs:
        known = ", ".join(sorted(jobs)) or "none"
        raise DashboardError(f"The app has no job {job!r} on queue {name!r} (its jobs: {known}).")
    processor = queue.processors.get(job) if isinstance(queue, JobQueue) else None
    if processor is None or processor.fn is None or not isinstance(queue, JobQueue):
        return  # a bulk job takes a list of jobs: nothing to bind
    task = AsyncTask(queue, job, processor.fn, processor.pass_context, processor.context_var)
    try:
        task.job_kwargs((), kwargs)
    except TypeError as exc:
        raise DashboardError(f"The arguments do not fit job {job!r}: {exc}") from None


def enqueue(env: SQSEnv, name: str, form: Mapping[str, Any], *, app_loaded: bool) -> str | None:
    """Send the job of the enqueue form to ``name``; returns its message id."""
    job = str(form.get("job") or "").strip()
    if not job:
        raise DashboardError("Give the job's name.")
    kwargs = _job_arguments(str(form.get("arguments") or ""))
    if app_loaded:
        check_enqueue(env, name, job, kwargs)
    delay_text = str(form.get("delay") or "").strip()
    delay: int | None = None
    if delay_text:
        if not delay_text.isdigit() or int(delay_text) > MAX_DELAY_SECONDS:
            raise DashboardError(f"Bad delay {delay_text!r}: 0 to {MAX_DELAY_SECONDS} seconds.")
        delay = int(delay_text)
    known = env.queues.get(name)
    queue = known if isinstance(known, JobQueue) else JobQueue(env, name)
    options: dict[str, Any] = {}
    if queue.is_fifo:
        if delay:
            raise DashboardError(f"{name} is a FIFO queue: SQS allows no per-message delay.")
        options["_group_id"] = str(form.get("group_id") or "").strip() or None
        options["_deduplication_id"] = str(form.get("deduplication_id") or "").strip() or None
    try:
        return queue.add_job(job, _delay_seconds=delay, **options, **kwargs)
    except (ConfigurationError, PluginError, ValueError, TypeError) as exc:
        raise DashboardError(f"Cannot send {job!r} to {name}: {exc}") from None
