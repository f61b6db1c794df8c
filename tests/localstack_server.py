"""LocalStack for the test session (used by tests/conftest.py).

``localstack_endpoint()`` returns the endpoint URL of an SQS-compatible
LocalStack on 127.0.0.1, or None when there is none (the caller then skips the
LocalStack tests with ``SKIP_REASON``):

1. ``SQSW_TEST_ENDPOINT`` set (``scripts/test.sh`` does it): that server is used.
2. else, if ``.localstack/venv`` exists: a server is started once per test
   session (module-level singleton) and stopped at exit (atexit; its watcher,
   scripts/localstack.py, also stops it if this process is killed without cleanup).
3. else None.

A server that is installed but fails to start raises (the tests error with the
LocalStack log tail) rather than being silently skipped.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENDPOINT_ENV = "SQSW_TEST_ENDPOINT"
REGION = "us-east-1"

SKIP_REASON = (
    "LocalStack is not available: run the suite with `bash scripts/test.sh` (it installs "
    "LocalStack into .localstack/venv and starts it), or set SQSW_TEST_ENDPOINT to a running "
    "SQS-compatible endpoint"
)

_lock = threading.Lock()
_server: Any = None  # scripts/localstack.py Server, when this process started one
_error: BaseException | None = None


def _localstack_module() -> ModuleType:
    """Import scripts/localstack.py (not a package) by path."""
    name = "sqsw_scripts_localstack"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "localstack.py")
        assert spec is not None
        assert spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses need the module registered
        spec.loader.exec_module(mod)
    return mod


def localstack_endpoint() -> str | None:
    """The endpoint URL of a LocalStack for this test session, or None (skip)."""
    global _server, _error
    env = os.environ.get(ENDPOINT_ENV, "").strip()
    if env:
        return env.rstrip("/")
    with _lock:
        if _server is not None:
            return str(_server.endpoint)
        if _error is not None:
            raise RuntimeError(f"LocalStack failed to start earlier: {_error}") from _error
        ls = _localstack_module()
        if not ls.is_installed():
            return None
        try:
            server = ls.start_server()
        except BaseException as e:
            _error = e
            raise
        _server = server
        atexit.register(_stop, server, os.getpid())
        print(
            f"\n[localstack] started for this test session at {server.endpoint} "
            f"in {server.ready_seconds:.2f} s (pid {server.pid})",
            file=sys.stderr,
        )
        return str(server.endpoint)


def _stop(server: Any, owner_pid: int) -> None:
    # A forked child (multiprocessing, os.fork in a test) inherits atexit handlers:
    # only the process that started the server stops it.
    if os.getpid() != owner_pid:
        return
    _localstack_module().stop_server(server)


def stop() -> None:
    """Stop the session's server now (if this process started one)."""
    global _server
    with _lock:
        if _server is not None:
            _stop(_server, os.getpid())
            _server = None


def boto3_session_kwargs(endpoint: str | None = None) -> dict[str, str]:
    """Keyword arguments for ``boto3.Session(...)`` against LocalStack."""
    return {
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }


def boto3_client_kwargs(endpoint: str) -> dict[str, str]:
    """Keyword arguments for ``boto3.client("sqs", ...)`` / ``session.client("sqs", ...)``."""
    return {**boto3_session_kwargs(endpoint), "endpoint_url": endpoint}
