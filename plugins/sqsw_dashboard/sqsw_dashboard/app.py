"""The dashboard's web application (Starlette): routes, guards, static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sqsw_dashboard import pages
from sqsw_dashboard.action_routes import ROUTES, move_tasks_json
from sqsw_dashboard.errors import DashboardError
from sqsw_dashboard.rendering import SQS_ERRORS, error_page
from sqsw_dashboard.security import GuardMiddleware
from sqsw_dashboard.state import Dashboard

__all__ = ["create_app"]


#: Errors shown as a page with one line (the others are bugs: logged, and a short page).
USER_ERRORS = (DashboardError, *SQS_ERRORS)


def create_app(dashboard: Dashboard, *, sample: bool = True) -> Starlette:
    """The ASGI app of ``dashboard``; ``sample``: run the depth sampler while it serves."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if sample:
            dashboard.sampler.start()
        try:
            yield
        finally:
            dashboard.sampler.stop()
            dashboard.runs.stop()

    routes = [
        Route("/", pages.overview),
        Route("/queues/{name}", pages.queue_page),
        Route("/queues/{name}/move-tasks.json", move_tasks_json),
        *(
            Route(f"/queues/{{name}}/{path}", endpoint, methods=["POST"])
            for path, endpoint in ROUTES
        ),
        Route("/redrives/{run_id}.json", pages.redrive_run_json),
        Route("/redrives/{run_id}", pages.redrive_run),
        Mount(
            "/static", StaticFiles(directory=str(files("sqsw_dashboard") / "static")), name="static"
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(dashboard.options.allowed_hosts)),
            Middleware(GuardMiddleware, credentials=dashboard.options.credentials),
        ],
        exception_handlers={
            **dict.fromkeys(USER_ERRORS, error_page),
            404: error_page,
            405: error_page,
            Exception: error_page,
        },
        lifespan=lifespan,
    )
    app.state.dashboard = dashboard
    return app
