"""The action endpoints (POST): each checks the CSRF token and ``--read-only`` first,
logs who did what, and shows a refused action's reason in the queue page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sqsw_core.queue_management import get_queue_attributes
from sqsw_dashboard import actions
from sqsw_dashboard.browsing import describe_message, hold_messages
from sqsw_dashboard.errors import DashboardError
from sqsw_dashboard.pages import show_queue
from sqsw_dashboard.rendering import (
    SQS_ERRORS,
    blocking,
    check_queue_name,
    dashboard_of,
    error_message,
)
from sqsw_dashboard.state import Dashboard

__all__ = ["ROUTES"]


@dataclass
class Action:
    """What an action endpoint gets: the dashboard, the queue, the form, who asked."""

    request: Request
    dashboard: Dashboard
    name: str
    form: dict[str, Any]
    ids: list[str]
    who: str

    def log(self, what: str, count: int | None = None, detail: str = "") -> None:
        self.dashboard.audit.record(self.who, what, self.name, count, detail)


Handler = Callable[[Action], Awaitable[Response]]


#: What an action shows in the queue page as one line: bad input, refusals, SQS errors.
ACTION_ERRORS: tuple[type[Exception], ...] = (DashboardError, *SQS_ERRORS)


def _check_allowed(
    dashboard: Dashboard, form: dict[str, Any], request: Request, changes: bool
) -> None:
    dashboard.csrf.check(form, request.headers)
    if changes and dashboard.options.read_only:
        raise DashboardError(
            "Refused: this dashboard runs with --read-only; it changes no queue.", 403
        )


def action(
    *, changes: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap an action: form parsing, the CSRF check, the read-only check (for actions
    that change queues); an error re-shows the queue page with its one line, and a
    refusal (CSRF, read-only, SQS) is logged with who tried what."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        what = handler.__name__.replace("_", " ")

        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            dashboard = dashboard_of(request)
            name = check_queue_name(request.path_params["name"])
            raw = await request.form()
            form = {key: value for key, value in raw.items() if isinstance(value, str)}
            ids = [v for v in raw.getlist("id") if isinstance(v, str) and v]
            act = Action(request, dashboard, name, form, ids, request.state.user)
            try:
                _check_allowed(dashboard, form, request, changes)
                return await handler(act)
            except ACTION_ERRORS as exc:
                message, status = error_message(exc)
                if status != 400:  # bad input is the user's typo; refusals are logged
                    act.log(f"was refused ({what}) on", None, message)
                return await show_queue(
                    request, name, status, error=message, form=form, selected=ids
                )

        return endpoint

    return wrap


def _browse(act: Action) -> list[Any]:
    env = act.dashboard.env
    queue = actions.dead_letter_queue(env, act.name)
    held = hold_messages(
        queue, act.dashboard.options.browse_limit, wait_seconds=actions.receive_wait(env)
    )
    try:
        return [describe_message(env, message) for message in held]
    finally:
        queue.runner.settler.release(held)


@action(changes=False)
async def browse(act: Action) -> Response:
    messages = await blocking(_browse, act)
    act.log("browsed", len(messages))
    return await show_queue(act.request, act.name, messages=messages, browsed=True)


def _target(act: Action) -> str:
    target = act.form.get("target", "").strip()
    if target:
        return check_queue_name(target)
    raise DashboardError("Choose the queue to move the messages to.")


@action(changes=False)
async def preview(act: Action) -> Response:
    selection = actions.selection_from(act.form, act.ids)
    target = _target(act)
    dead = actions.dead_letter_queue(act.dashboard.env, act.name, target)
    wait = actions.receive_wait(act.dashboard.env)
    candidates = await blocking(dead.dry_run, selection, wait_seconds=wait)
    act.log("previewed a redrive of", len(candidates), f"to {target}")
    return await show_queue(
        act.request, act.name, candidates=candidates, form=act.form, selected=act.ids
    )


def _start_redrive(act: Action) -> str:
    selection = actions.selection_from(act.form, act.ids)
    target = _target(act)
    env = act.dashboard.env
    dead = actions.dead_letter_queue(env, act.name, target)
    dead.upstream.url  # noqa: B018 - a missing target fails here, not in the run
    depth = int(get_queue_attributes(env, act.name).get("ApproximateNumberOfMessages", 0))
    described = _describe_selection(act)
    expected = act.form.get("expected", "")
    # The progress bar's total: what the preview found, the selection, else the depth.
    total = int(expected) if expected.isdigit() else len(act.ids) or depth

    def finished(run: Any) -> None:
        act.log("redrove", run.moved, f"to {target}, {described}, {run.failed} failed")

    run = act.dashboard.runs.start(
        dead,
        selection,
        total=total,
        limit=len(act.ids) or None,
        wait_seconds=actions.receive_wait(env),
        description=described,
        who=act.who,
        on_finish=finished,
    )
    act.log("started a redrive of", total, f"to {target}, {described}")
    return run.id


def _describe_selection(act: Action) -> str:
    if act.ids:
        return f"{len(act.ids)} selected message(s)"
    parts = [f"{k}={act.form[k]}" for k in actions.FILTER_FIELDS if act.form.get(k, "").strip()]
    return "filter " + ", ".join(parts) if parts else "every message"


@action()
async def redrive(act: Action) -> Response:
    run_id = await blocking(_start_redrive, act)
    return RedirectResponse(f"/redrives/{run_id}", status_code=303)


@action()
async def delete(act: Action) -> Response:
    deleted, missing = await blocking(actions.delete_selected, act.dashboard.env, act.name, act.ids)
    act.log("deleted", deleted, f"{missing} not found" if missing else "")
    notice = f"Deleted {deleted} message(s)." + (
        f" {missing} selected message(s) were not found (already gone?)." if missing else ""
    )
    return await show_queue(act.request, act.name, notice=notice)


@action()
async def purge(act: Action) -> Response:
    await blocking(actions.purge, act.dashboard.env, act.name, act.form.get("confirm", ""))
    act.log("purged")
    return await show_queue(
        act.request, act.name, notice=f"Purged {act.name}: SQS deletes every message within 60 s."
    )


@action()
async def start_move_task(act: Action) -> Response:
    env = act.dashboard.env
    task = await blocking(actions.start_move_task, env, act.name, act.form.get("rate", ""))
    act.log("started a move task on", None, f"rate {task.max_messages_per_second or 'SQS pace'}")
    return await show_queue(
        act.request, act.name, notice="SQS is moving the messages back to their source queues."
    )


@action()
async def cancel_move_task(act: Action) -> Response:
    moved = await blocking(actions.cancel_move_task, act.dashboard.env, act.name)
    act.log("cancelled the move task of", moved)
    return await show_queue(
        act.request, act.name, notice=f"Move task cancelled after {moved} message(s)."
    )


@action()
async def enqueue(act: Action) -> Response:
    dashboard = act.dashboard
    loaded = dashboard.options.app is not None
    message_id = await blocking(
        actions.enqueue, dashboard.env, act.name, act.form, app_loaded=loaded
    )
    act.log("enqueued", 1, f"job {act.form.get('job', '').strip()}")
    return await show_queue(
        act.request,
        act.name,
        notice=f"Sent job {act.form.get('job', '').strip()!r}: message id {message_id}.",
    )


async def move_tasks_json(request: Request) -> Response:
    name = check_queue_name(request.path_params["name"])
    tasks = await blocking(actions.move_tasks, dashboard_of(request).env, name)
    return JSONResponse(
        [
            {
                "status": t.status,
                "moved": t.moved,
                "to_move": t.to_move,
                "failure": t.failure_reason,
            }
            for t in tasks
        ]
    )


#: (path under /queues/{name}/, endpoint)
ROUTES = [
    ("browse", browse),
    ("preview", preview),
    ("redrive", redrive),
    ("delete", delete),
    ("purge", purge),
    ("move-task", start_move_task),
    ("move-task/cancel", cancel_move_task),
    ("enqueue", enqueue),
]
