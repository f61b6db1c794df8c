"""Finding and loading plugins: seven entry-point groups, loaded with stevedore.

A plugin is an entry point in one of the groups below, declared in the
``pyproject.toml`` of the package that provides it. The core registers its own
defaults the same way, so nothing here knows about any particular plugin
except to tell a user which package to install for a name sqsw ships.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from sqsw_core.exceptions import PluginError

SESSIONS = "sqsw.sessions"
CODECS = "sqsw.codecs"
PROCESSORS = "sqsw.processors"
QUEUE_TYPES = "sqsw.queue_types"
BACKOFF = "sqsw.backoff"
SHUTDOWN = "sqsw.shutdown"
#: Metrics exporters for ``sqsw run --metrics-port`` (:mod:`sqsw_core.metrics`).
METRICS = "sqsw.metrics"
#: ``sqsw`` subcommands from plugins: loaded by :mod:`sqsw_core.cli`, not by :func:`load`.
COMMANDS = "sqsw.commands"

#: What a plugin of each group provides, for error messages and ``sqsw plugins``.
GROUPS: dict[str, str] = {
    SESSIONS: "an SQS client factory (boto3-shaped session)",
    CODECS: "a message body and context serializer",
    PROCESSORS: "a Processor subclass wrapping the call of a job function",
    QUEUE_TYPES: "a queue class",
    BACKOFF: "a retry delay policy",
    SHUTDOWN: "a policy deciding when a worker stops",
    METRICS: "a metrics exporter for sqsw run --metrics-port",
}

#: The plugins sqsw ships and the distribution that provides each, so that a
#: missing one can be named in the error. Third-party plugins need no entry.
#: ``tests/test_drift.py`` checks it against every shipped ``pyproject.toml``.
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    SESSIONS: {"aws": "sqsw-core", "memory": "sqsw-memory"},
    CODECS: {
        "json": "sqsw-json",
        "pickle": "sqsw-pickle",
        "pickle_compat": "sqsw-pickle",
        "signed": "sqsw-signing",
    },
    PROCESSORS: {"default": "sqsw-core", "otel": "sqsw-otel"},
    QUEUE_TYPES: {"job": "sqsw-core", "raw": "sqsw-cloudwatch", "deadletter": "sqsw-deadletter"},
    BACKOFF: {"exponential": "sqsw-core", "constant": "sqsw-core", "immediate": "sqsw-core"},
    SHUTDOWN: {"never": "sqsw-core", "idle": "sqsw-core", "max_tasks": "sqsw-core"},
    METRICS: {"prometheus": "sqsw-prometheus"},
    COMMANDS: {
        "dashboard": "sqsw-dashboard",
        "lambda": "sqsw-lambda",
        "redrive": "sqsw-deadletter",
    },
}

_lock = threading.Lock()
_loaded: dict[tuple[str, str], Any] = {}


def installed_names(group: str) -> list[str]:
    """Names registered in ``group`` by the installed distributions, sorted."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=group)})


def provider(ep: importlib.metadata.EntryPoint) -> str:
    """``"distribution version"`` of the distribution declaring ``ep`` (``"?"`` if unknown)."""
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def providers(group: str) -> dict[str, str]:
    """Map each installed plugin name of ``group`` to ``"distribution version"``."""
    return {ep.name: provider(ep) for ep in importlib.metadata.entry_points(group=group)}


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise ValueError(f"unknown sqsw entry-point group {group!r}; groups: {', '.join(GROUPS)}")


def not_found_error(group: str, name: str, reason: str | None = None) -> PluginError:
    """Build the one error sqsw raises for a plugin name it cannot use."""
    installed = installed_names(group)
    close = difflib.get_close_matches(name, installed, n=1, cutoff=0.6)
    suggestion = close[0] if close else None
    package = KNOWN_PROVIDERS.get(group, {}).get(name)
    if reason is None:
        parts = [f"No sqsw plugin named {name!r} in group {group!r} ({GROUPS[group]})."]
    else:
        parts = [f"The sqsw plugin {name!r} in group {group!r} failed to load: {reason}."]
    parts.append(f"Installed: {', '.join(installed) if installed else 'none'}.")
    if suggestion is not None and reason is None:
        parts.append(f"Did you mean {suggestion!r}?")
    if package is not None:
        verb = "Reinstall" if reason is not None else "Install"
        parts.append(f"{verb} it with: pip install {package}")
    elif reason is None:
        parts.append(
            f"If {name!r} comes from a third-party package, install that package; it must "
            f"declare an entry point named {name!r} in the group {group!r}."
        )
    return PluginError(
        " ".join(parts),
        group=group,
        name=name,
        installed=installed,
        suggestion=suggestion,
        package=package,
    )


def load(group: str, name: str) -> Any:
    """Return the object the entry point ``name`` of ``group`` points at.

    Loaded once per process and cached. Raises :class:`PluginError` when the
    name is not installed or its module fails to import.
    """
    key = (group, name)
    try:
        return _loaded[key]
    except KeyError:
        pass
    _check_group(group)
    failure: list[str] = []

    def on_failure(_manager: Any, entrypoint: Any, exc: BaseException) -> None:
        failure.append(f"{type(exc).__name__}: {exc} (entry point {entrypoint.value!r})")

    with _lock:
        if key in _loaded:
            return _loaded[key]
        try:
            manager = DriverManager(namespace=group, name=name, on_load_failure_callback=on_failure)
        except NoMatches:
            raise not_found_error(group, name, failure[0] if failure else None) from None
        except RuntimeError as exc:  # several distributions register the same name
            raise not_found_error(group, name, str(exc)) from None
        plugin = manager.driver
        _loaded[key] = plugin
        return plugin


def resolve(
    group: str,
    spec: Any,
    check: Callable[[Any], bool],
    *,
    instantiate: bool = True,
    what: str | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Turn a user's choice of plugin (a name or an object) into the object.

    A string is looked up in ``group``; the entry point's target is called with
    ``options`` when ``instantiate`` is true (entry points name factories,
    usually classes). Anything else is taken as the object itself. The result
    must pass ``check``; otherwise a :class:`PluginError` says what was expected.
    """
    if isinstance(spec, str):
        name = spec
        factory = load(group, name)
        obj = factory(**(options or {})) if instantiate else factory
    else:
        name = getattr(spec, "__name__", type(spec).__name__)
        obj = spec
    if not check(obj):
        expected = what or GROUPS[group]
        raise PluginError(
            f"{obj!r} (given as {spec!r} for group {group!r}) is not {expected}.",
            group=group,
            name=name,
            installed=installed_names(group),
        )
    return obj


def clear_cache() -> None:
    """Forget loaded plugins (tests that install plugins at run time use this)."""
    with _lock:
        _loaded.clear()
        # stevedore keeps each group's entry-point list for the process's life.
        ExtensionManager.ENTRY_POINT_CACHE.clear()
    importlib.invalidate_caches()
