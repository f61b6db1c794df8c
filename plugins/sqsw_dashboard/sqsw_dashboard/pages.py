"""The pages: overview, queue page, a redrive's progress (and their JSON)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sqsw_dashboard.actions import move_tasks
from sqsw_dashboard.describe import attribute_lines, duration
from sqsw_dashboard.errors import DashboardError
from sqsw_dashboard.overview import OverviewRow, age_notes, overview_rows
from sqsw_dashboard.queue_listing import fetch_queue
from sqsw_dashboard.rendering import blocking, check_queue_name, dashboard_of, render
from sqsw_dashboard.sampling import sparkline
from sqsw_dashboard.state import Dashboard

__all__ = ["overview", "queue_page", "redrive_run", "redrive_run_json", "show_queue"]

#: The size of the depth chart on a queue's page.
CHART_WIDTH, CHART_HEIGHT = 240, 40


def _overview_rows(dashboard: Dashboard, prefix: str, search: str) -> list[OverviewRow]:
    infos = dashboard.recent()
    names = [info.name for info in infos if info.name.startswith(prefix)]
    ages = dashboard.oldest.get(names)
    samples = {name: dashboard.sampler.samples(name) for name in names}
    return overview_rows(infos, ages, samples, prefix=prefix, search=search)


async def overview(request: Request) -> Response:
    """Every queue: counts, oldest age, dead-letter queue, rates and depth chart.

    ``?prefix=`` and ``?q=`` narrow the list; ``?rows=1`` returns the table's body
    only (the page's script refreshes it with that).
    """
    dashboard = dashboard_of(request)
    prefix = request.query_params.get("prefix", "")
    search = request.query_params.get("q", "")
    rows = await blocking(_overview_rows, dashboard, prefix, search)
    context: dict[str, Any] = {
        "rows": rows,
        "notes": age_notes(rows),
        "prefix": prefix,
        "search": search,
    }
    if request.query_params.get("rows"):
        return render(request, "overview_rows.html", **context)
    return render(request, "overview.html", recent=dashboard.audit.recent(), **context)


def _queue_context(dashboard: Dashboard, name: str) -> dict[str, Any]:
    env = dashboard.env
    info = fetch_queue(env, name)
    dead_name = None
    if info.dead_letter_arn:
        sqs_name = info.dead_letter_arn.rsplit(":", 1)[-1]
        prefix = env.queue_prefix
        dead_name = sqs_name[len(prefix) :] if sqs_name.startswith(prefix) else sqs_name
    tasks, tasks_error = [], None
    if info.is_dead_letter_queue and not info.fifo:
        try:
            tasks = move_tasks(env, name)
        except Exception as exc:  # an endpoint without move tasks: say so, keep the page
            tasks_error = str(exc)
    jobs: list[str] = []
    known = env.queues.get(name)
    if known is not None:
        jobs = sorted({*getattr(known, "processors", {}), *known.bulk_processors})
    return {
        "info": info,
        "name": name,
        "dead_letter_name": dead_name,
        "lines": attribute_lines(info, dead_name),
        "tasks": tasks,
        "tasks_error": tasks_error,
        "jobs": jobs,
        "chart": sparkline(dashboard.sampler.samples(name), CHART_WIDTH, CHART_HEIGHT),
    }


async def show_queue(request: Request, name: str, status: int = 200, **extra: Any) -> Response:
    """The queue page, with what an action adds (a notice, an error, browsed messages)."""
    dashboard = dashboard_of(request)
    context = await blocking(_queue_context, dashboard, check_queue_name(name))
    context.setdefault("form", {})
    context.update(extra)
    return render(request, "queue.html", status, duration=duration, **context)


async def queue_page(request: Request) -> Response:
    return await show_queue(request, request.path_params["name"])


def _run_of(request: Request) -> Any:
    run = dashboard_of(request).runs.get(request.path_params["run_id"])
    if run is None:
        raise DashboardError(
            "No such redrive: this dashboard did not start it (or was restarted since).", 404
        )
    return run


async def redrive_run(request: Request) -> Response:
    return render(request, "redrive_run.html", run=_run_of(request))


async def redrive_run_json(request: Request) -> Response:
    return JSONResponse(_run_of(request).as_json())
