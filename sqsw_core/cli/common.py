"""What every command shares: exit codes, error translation, settings, the app and the env.

This module is the API for commands that plugins add to ``sqsw`` through the
``sqsw.commands`` entry-point group (docs/plugins.md, "Adding a CLI command"): the
names in ``__all__`` keep their meaning and signature across minor versions; any
other name here is internal. Built with it, a plugin's command reads the same
configuration, loads the app the same way and exits with the same codes and
one-line errors as ``sqsw run`` and the core's other commands:

- configuration and the app: :func:`env_options`, :func:`settings_for`,
  :func:`env_for`, :func:`load_app`, :func:`import_app`;
- errors and exit codes: :class:`CliError`, the ``EXIT_*`` codes,
  :data:`EXIT_CODES_HELP`, :func:`translate`, :class:`AppImportError`,
  :class:`SqswGroup`;
- flag values and output: :func:`bounded`, :func:`show`, :func:`console`;
- the entry-point group itself: :data:`COMMANDS_GROUP`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import click
from rich.console import Console

from sqsw_core.config import Settings, load_settings
from sqsw_core.engine_options import OptionRange, describe_range, in_range, show
from sqsw_core.env import SQSEnv
from sqsw_core.exceptions import (
    ConfigurationError,
    PluginError,
    QueueNotFoundError,
    SQSCallError,
)
from sqsw_core.plugins import COMMANDS

__all__ = [
    "COMMANDS_GROUP",
    "EXIT_APP",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PLUGIN",
    "EXIT_SQS",
    "EXIT_USAGE",
    "AppImportError",
    "CliError",
    "SqswGroup",
    "bounded",
    "console",
    "env_for",
    "env_options",
    "import_app",
    "load_app",
    "settings_for",
    "show",
    "translate",
]

logger = logging.getLogger("sqsw.cli")

#: The entry-point group of ``sqsw`` subcommands from plugins (each names a click command).
COMMANDS_GROUP = COMMANDS

# Exit codes of every ``sqsw`` command (``sqsw run --help`` and the README list them).

#: 0: the command did its work; ``sqsw run`` stopped normally (signal or shutdown policy).
EXIT_OK = 0
#: 1: an unexpected error, or worker processes that crashed during ``sqsw run``.
EXIT_ERROR = 1
#: 2: a bad command line (click's usage errors exit with it too).
EXIT_USAGE = 2
#: 3: the app cannot be imported or holds no ``SQSEnv`` (:class:`AppImportError`).
EXIT_APP = 3
#: 4: a plugin or configuration error: unknown plugin name or key, bad value.
EXIT_PLUGIN = 4
#: 5: SQS unreachable, credentials or permission refused, or a queue does not exist.
EXIT_SQS = 5

#: The exit codes in one paragraph, for the ``epilog`` of a command's ``--help``.
EXIT_CODES_HELP = (
    "Exit codes: 0 stopped normally (signal or shutdown policy); 1 unexpected error or "
    "crashed worker processes; 2 bad command line; 3 the app cannot be imported; 4 "
    "plugin or configuration error (unknown plugin name or key, bad value); 5 SQS "
    "unreachable, credentials or permission refused, or a queue does not exist."
)


class AppImportError(Exception):
    """The user's app module cannot be imported or holds no ``SQSEnv``."""


class CliError(click.ClickException):
    """An error shown as one line, ``Error: message``, then exit with ``exit_code``.

    ``exit_code`` is one of the ``EXIT_*`` codes above.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it on the instance


def _botocore_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def translate(exc: BaseException) -> CliError | None:
    """The CLI error for an exception a command let through, or ``None`` (a bug: re-raise).

    :class:`AppImportError` exits 3; ``PluginError`` and ``ConfigurationError`` 4;
    ``QueueNotFoundError``, ``SQSCallError`` and botocore errors 5.
    """
    if isinstance(exc, AppImportError):
        return CliError(str(exc), EXIT_APP)
    if isinstance(exc, PluginError | ConfigurationError):
        return CliError(str(exc), EXIT_PLUGIN)
    if isinstance(exc, QueueNotFoundError):
        return CliError(_queue_not_found_message(exc), EXIT_SQS)
    if isinstance(exc, SQSCallError):
        return CliError(str(exc), EXIT_SQS)
    if isinstance(exc, _botocore_errors()):
        return CliError(f"SQS: {exc}", EXIT_SQS)
    return None


def _queue_not_found_message(exc: QueueNotFoundError) -> str:
    """The one line for a missing queue, suggesting the ``sqsw queue create`` command."""
    what = str(exc).split(". Create it", 1)[0].rstrip(".")
    return (
        f"{what}. Create it with: sqsw queue create {exc.queue_name} (a name ending in "
        ".fifo makes a FIFO queue), or check the queue name, --queue-prefix, region and "
        "endpoint"
    )


def _one_line(exc: click.UsageError) -> CliError:
    """A usage error as one line (exit 2) naming the ``--help`` to read, instead of
    click's usage, hint and error lines."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
    return CliError(f"{message}{where}", exc.exit_code)


class SqswGroup(click.Group):
    """A click group that turns sqsw's errors into messages and exit codes (:func:`translate`),
    and click's usage errors into one line (exit 2).

    ``sqsw`` itself is one, so the commands plugins add need not be; a plugin that
    also ships a standalone command line can use it for the same behaviour.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _one_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            raise error from exc


#: The width of tables when the output is not a terminal (piped or in a file).
PIPED_WIDTH = 80


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (results) or stderr (progress): tables fit the terminal's
    width, or :data:`PIPED_WIDTH` (80) columns when not a terminal (piped)."""
    con = Console(stderr=stderr)
    if not con.is_terminal:
        con = Console(stderr=stderr, width=PIPED_WIDTH)
    return con


# -- settings ---------------------------------------------------------------------

_FLAG_NAMES = {
    "session": "--session",
    "codec": "--codec",
    "processor": "--processor",
    "backoff_policy": "--backoff-policy",
    "queue_prefix": "--queue-prefix",
    "app": "--app",
    "concurrency": "--concurrency",
    "workers": "--workers",
    "shutdown": "--shutdown",
    "wait_seconds": "--wait-seconds",
    "priority": "--priority",
}


def settings_for(ctx: click.Context, **flags: Any) -> Settings:
    """The merged settings: config file (``--config`` or found), ``SQSW_*`` variables, then
    ``flags`` (later wins; a flag given as ``None`` is not set).

    ``flags`` are settings keys (``app``, ``session``, ``codec``, ``queue_prefix``, ...); an
    unknown key or a bad value raises ``ConfigurationError`` (exit 4) naming its source.
    """
    config = ctx.find_root().params.get("config")
    settings = load_settings(config)
    settings.update(flags, lambda key: f"option {_FLAG_NAMES.get(key, key)}")
    return settings


def env_for(ctx: click.Context, **flags: Any) -> SQSEnv:
    """A new ``SQSEnv`` from :func:`settings_for` (no app imported): for commands that only
    talk to SQS, like ``sqsw queue`` and ``sqsw enqueue``."""
    settings = settings_for(ctx, **flags)
    return SQSEnv(**settings.env_options())


def bounded(
    minimum: float,
    maximum: float | None = None,
    *,
    integer: bool = True,
    exclusive: bool = False,
    reason: str = "",
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing a flag's value outside a range: exit 4, one line naming
    the flag (``option --max-receives: must be an integer from 1 to 1000 ..., got 0``)."""
    rule = OptionRange(
        integer=integer,
        minimum=minimum,
        maximum=maximum,
        exclusive=exclusive,
        maximum_reason=reason,
        automatic=True,  # an option not given is None
    )

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if not in_range(rule, value):
            flag = max(param.opts, key=len)
            expected = describe_range(replace(rule, automatic=False))
            raise CliError(f"option {flag}: must be {expected}, got {show(value)}", EXIT_PLUGIN)
        return value

    return check


def env_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding ``--session``, ``--codec`` and ``--queue-prefix``, the options of
    commands that talk to SQS; pass them on as ``**flags`` to :func:`env_for` or
    :func:`settings_for`."""
    func = click.option(
        "--queue-prefix", default=None, help="Prefix of the SQS queue names (config queue_prefix)."
    )(func)
    func = click.option("--codec", default=None, help="Codec plugin name (default json).")(func)
    func = click.option(
        "--session", default=None, help="Session plugin name: aws (default), memory, ..."
    )(func)
    return func


# -- the user's app ----------------------------------------------------------------


@contextmanager
def _cwd_on_path() -> Iterator[None]:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _describe(exc: BaseException) -> str:
    """``Type: message (file, line N)``: where the user's code raised, without a traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} ({exc.filename}, line {exc.lineno})"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen")
        and frame.filename not in (__file__, importlib.__file__)
    ]
    # The user's own line (not Python's or an installed library's) says what to change.
    mine = [frame for frame in frames if not _library_file(frame.filename)] or frames
    where = f" ({mine[-1].filename}, line {mine[-1].lineno})" if mine else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _library_file(filename: str) -> bool:
    """Whether ``filename`` is Python's, an installed distribution's or sqsw's own code."""
    roots = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(os.path.dirname(os.path.dirname(__file__)))  # sqsw_core
    path = os.path.abspath(filename)
    return any(root and path.startswith(os.path.join(root, "")) for root in roots)


def _run_app_code(run: Callable[[], Any], failed: str) -> Any:
    """Run the app's code (its import or its factory) with the current dir importable.

    sqsw's own errors go on as they are; anything else becomes one line, ``failed``
    followed by the error and where it happened (the traceback at DEBUG).
    """
    with _cwd_on_path():
        try:
            return run()
        except (PluginError, ConfigurationError):
            raise
        except Exception as exc:
            logger.debug("%s...", failed.rstrip(": "), exc_info=exc)
            raise AppImportError(failed + _describe(exc)) from exc


def _import_app_module(module_name: str, failed: str) -> Any:
    """Import the app's module; a file path or a module not found says what to give."""
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        dotted = module_name.removesuffix(".py").replace(os.sep, ".").replace("/", ".")
        raise AppImportError(
            f"{failed}give a module name, not a file: --app {dotted.strip('.')}[:NAME]"
        )
    try:
        return _run_app_code(lambda: importlib.import_module(module_name), failed)
    except AppImportError as exc:
        cause = exc.__cause__
        missing = getattr(cause, "name", None)
        if (
            isinstance(cause, ModuleNotFoundError)
            and missing
            and (module_name == missing or module_name.startswith(missing + "."))
        ):
            raise AppImportError(
                f"{exc}: run sqsw from the directory that holds it ({os.getcwd()} is "
                "searched) or add that directory to PYTHONPATH"
            ) from cause
        raise


def import_app(spec: str | None, source: str = "--app") -> SQSEnv:
    """Import ``module[:attr]`` and return its ``SQSEnv`` (the current dir is importable).

    Without ``attr`` the module must hold exactly one ``SQSEnv``. ``attr`` may
    also name a function returning one. ``source`` says where ``spec`` came from in
    the errors. Every failure is an :class:`AppImportError` (exit 3), one line saying
    where the app's code raised; :func:`load_app` also applies the configuration.
    """
    if not spec:
        raise AppImportError(
            "no app to run: give --app module:attr, set app in [tool.sqsw] (pyproject.toml) "
            "or sqsw.toml, or set SQSW_APP"
        )
    module_name, _, attr = spec.partition(":")
    module = _import_app_module(module_name, f"cannot import app {spec!r} (from {source}): ")
    if attr:
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise AppImportError(
                    f"app {spec!r} (from {source}): module {module_name!r} has no attribute "
                    f"{attr!r}"
                )
            obj = getattr(obj, part)
        if callable(obj) and not isinstance(obj, SQSEnv):
            obj = _run_app_code(obj, f"app {spec!r} (from {source}): {attr}() raised ")
        if not isinstance(obj, SQSEnv):
            raise AppImportError(
                f"app {spec!r} (from {source}) is a {type(obj).__name__}, not an SQSEnv"
            )
        return obj
    found = [value for value in vars(module).values() if isinstance(value, SQSEnv)]
    unique = list({id(env): env for env in found}.values())
    if len(unique) != 1:
        names = [name for name, value in vars(module).items() if isinstance(value, SQSEnv)]
        raise AppImportError(
            f"app {spec!r} (from {source}) holds {len(unique)} SQSEnv objects "
            f"({', '.join(names) or 'none'}): name one with --app {module_name}:NAME"
        )
    return unique[0]


def load_app(settings: Settings) -> SQSEnv:
    """The user's app as ``sqsw run`` loads it: the ``SQSEnv`` of the app the settings name
    (``--app``, else config ``app``, else ``SQSW_APP``), with the settings applied to it
    (plugins and options from the config file, ``SQSW_*`` variables and flags win).

    Raises :class:`AppImportError` (exit 3) when there is no app or it cannot be imported,
    ``PluginError``/``ConfigurationError`` (exit 4) for a bad plugin or option.
    """
    env = import_app(settings.get("app"), settings.source("app"))
    env.reconfigure(**settings.env_options())
    return env
