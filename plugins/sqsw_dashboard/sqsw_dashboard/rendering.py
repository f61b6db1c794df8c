"""Templates, the error page, and running blocking SQS calls off the event loop."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from sqsw_core.exceptions import QueueNotFoundError, SQSCallError
from sqsw_core.retries import describe_error
from sqsw_dashboard.errors import DashboardError
from sqsw_dashboard.security import CSRF_FIELD
from sqsw_dashboard.state import Dashboard

__all__ = [
    "SQS_ERRORS",
    "blocking",
    "check_queue_name",
    "dashboard_of",
    "error_message",
    "error_page",
    "render",
    "templates",
]

logger = logging.getLogger("sqsw.dashboard")

templates = Jinja2Templates(directory=str(files("sqsw_dashboard") / "templates"))

#: SQS queue names: 1 to 80 letters, digits, - and _ (``.fifo`` at the end for FIFO).
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")

T = TypeVar("T")


def _sqs_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (QueueNotFoundError, SQSCallError, BotoCoreError, ClientError)


#: What SQS raises for a refused call: shown as one line, like bad input.
SQS_ERRORS = _sqs_errors()


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def check_queue_name(name: str) -> str:
    if not QUEUE_NAME.match(name):
        raise DashboardError(
            f"No queue named {name[:100]!r}: SQS queue names are 1 to 80 letters, digits, "
            "'-' and '_' (FIFO ones end with .fifo).",
            404,
        )
    return name


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (SQS) on the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    dashboard = dashboard_of(request)
    context.update(
        dashboard=dashboard,
        options=dashboard.options,
        csrf_field=CSRF_FIELD,
        csrf_token=dashboard.csrf.token,
        user=request.state.user,
        prefix_of_env=dashboard.env.queue_prefix,
    )
    return templates.TemplateResponse(request, template, context, status_code=status)


def error_message(exc: BaseException) -> tuple[str, int]:
    """The page's one line for an error, and its HTTP status."""
    if isinstance(exc, DashboardError):
        return exc.message, exc.status
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return "No such page: go back to the overview.", 404
        return f"{exc.detail}", exc.status_code
    if isinstance(exc, QueueNotFoundError):
        return (f"No queue named {exc.queue_name!r} here: {exc}".split(". Create it")[0], 404)
    if isinstance(exc, SQSCallError):
        return f"SQS refused: {exc}", 502
    if isinstance(exc, SQS_ERRORS):
        return f"SQS refused: {describe_error(exc)}", 502
    logger.error("Dashboard page failed", exc_info=exc)
    return (
        f"Internal error ({type(exc).__name__}); the dashboard's log has the details.",
        500,
    )


async def error_page(request: Request, exc: Exception) -> Response:
    message, status = error_message(exc)
    return render(request, "error.html", status, message=message, code=status)
