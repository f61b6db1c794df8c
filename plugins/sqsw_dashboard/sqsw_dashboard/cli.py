"""``sqsw dashboard``: the command sqsw-dashboard adds to ``sqsw`` (entry point ``sqsw.commands``).

Built on :mod:`sqsw_core.cli.common`: the same configuration, app loading, exit
codes and one-line errors as every other ``sqsw`` command.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

import click

from sqsw_core.cli.common import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    CliError,
    bounded,
    env_options,
    load_app,
    settings_for,
)
from sqsw_core.cli.log_format import JsonFormatter
from sqsw_core.env import SQSEnv
from sqsw_dashboard.auth import Credentials, load_credentials

if TYPE_CHECKING:
    from sqsw_dashboard.state import Dashboard

__all__ = ["dashboard", "is_loopback"]

DEFAULT_PORT = 8642
#: The ``Host`` names served without ``--auth``: this machine's only.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(auth: str | None, host: str) -> Credentials | None:
    if auth is None:
        if not is_loopback(host):
            raise CliError(
                f"--host {host}: listening beyond this machine needs --auth env:VARIABLE or "
                "--auth file:PATH (a token, or user:password lines)",
                EXIT_USAGE,
            )
        return None
    try:
        return load_credentials(auth)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _logging(log_format: str | None) -> None:
    """INFO records to stderr (the audit log among them): text lines, or JSON objects
    with ``log_format = "json"`` (config or ``SQSW_LOG_FORMAT``), as ``sqsw run``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command("dashboard", epilog=EXIT_CODES_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    callback=bounded(0, 65535),
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--auth",
    default=None,
    help="env:VARIABLE or file:PATH holding a token or user:password lines; "
    "required with a --host other than this machine.",
)
@click.option("--read-only", is_flag=True, help="Show queues and messages; change nothing.")
@click.option(
    "--app",
    default=None,
    help="module:attr of the app's SQSEnv (config app, SQSW_APP): its codec and keys decode "
    "messages, and enqueued jobs are checked against its jobs' signatures.",
)
@click.option(
    "--accept",
    multiple=True,
    help="Also decode this content type in the message browser (e.g. pickle: only if you "
    "trust every producer). Repeatable.",
)
@click.option(
    "--sample-interval",
    type=float,
    default=10.0,
    show_default=True,
    callback=bounded(1, 3600, integer=False),
    help="Seconds between two depth samples (rates and charts).",
)
@click.option(
    "--history",
    type=float,
    default=600.0,
    show_default=True,
    callback=bounded(10, 86400, integer=False),
    help="Seconds of samples kept for the charts.",
)
@click.option(
    "--refresh",
    type=float,
    default=5.0,
    show_default=True,
    callback=bounded(1, 3600, integer=False),
    help="Seconds between two refreshes of the overview in the browser.",
)
@env_options
@click.pass_context
def dashboard(
    ctx: click.Context,
    /,
    host: str,
    port: int,
    auth: str | None,
    read_only: bool,
    app: str | None,
    accept: tuple[str, ...],
    sample_interval: float,
    history: float,
    refresh: float,
    **flags: Any,
) -> None:
    """Serve the web dashboard: queues, dead letters, redrive (http://127.0.0.1:8642).

    Listens on this machine only unless --host and --auth are given. Every action
    is logged (logger sqsw.dashboard.audit) with who did it and to how many messages.
    """
    from sqsw_dashboard.state import Dashboard, DashboardOptions  # the web stack, when used

    credentials = _credentials(auth, host)
    settings = settings_for(ctx, app=app, accept=list(accept) or None, **flags)
    app_name = settings.get("app")
    env = load_app(settings) if app_name else SQSEnv(**settings.env_options())
    options = DashboardOptions(
        read_only=read_only,
        app=str(app_name) if app_name else None,
        credentials=credentials,
        sample_interval=sample_interval,
        history=history,
        refresh=refresh,
        allowed_hosts=("*",) if credentials is not None else (*LOOPBACK_NAMES, host),
    )
    _serve(Dashboard(env, options), host, port, settings.get("log_format"))


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket (bound here, so a port in use is one line, and port 0 says
    which port it got)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise CliError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}; choose another "
            "--port (or --host)",
            EXIT_USAGE,
        ) from None


def _serve(board: Dashboard, host: str, port: int, log_format: str | None) -> None:
    import uvicorn

    from sqsw_dashboard.app import create_app

    listener = _listen(host, port)
    with listener:
        board.fetch()  # SQS unreachable or refused: exit 5 now, not at the first page
        _logging(log_format)
        bound_port = listener.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"sqsw dashboard on http://{shown}:{bound_port}/ (Ctrl-C stops it)", err=True)
        config = uvicorn.Config(create_app(board), log_level="warning")
        uvicorn.Server(config).run(sockets=[listener])
