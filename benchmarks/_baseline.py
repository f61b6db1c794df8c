"""Helpers shared by the benchmarks: the sqs-workers 0.7.3 baseline venv, LocalStack."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASELINE_VENV = REPO / ".bench" / "sqs-workers-0.7.3"
BASELINE_REQUIREMENTS = ["sqs-workers==0.7.3", "typing_extensions"]


def baseline_python() -> Path:
    """The interpreter of a venv with sqs-workers 0.7.3 from PyPI, created on first use.

    sqs-workers 0.7.3 imports typing_extensions without declaring it, so it is
    installed alongside.
    """
    python = BASELINE_VENV / "bin" / "python"
    stamp = BASELINE_VENV / ".installed"
    BASELINE_VENV.parent.mkdir(parents=True, exist_ok=True)
    # Test processes running side by side (pytest -n 2) ask for it at the same
    # time: one creates it while the others wait, then find the stamp.
    with open(BASELINE_VENV.parent / f"{BASELINE_VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != " ".join(BASELINE_REQUIREMENTS):
            print(
                f"[bench] creating {BASELINE_VENV} with {' '.join(BASELINE_REQUIREMENTS)}",
                file=sys.stderr,
            )
            venv.create(BASELINE_VENV, with_pip=True, clear=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *BASELINE_REQUIREMENTS],
                check=True,
            )
            stamp.write_text(" ".join(BASELINE_REQUIREMENTS))
    return python


def run_baseline(script: str, *args: str, timeout: float) -> dict[str, object] | None:
    """Run ``script`` (Python source) in the baseline venv; its last stdout line is JSON.

    Returns ``None`` when it runs past ``timeout`` seconds.
    """
    try:
        out = subprocess.run(
            [str(baseline_python()), "-c", script, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        ).stdout
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def load_localstack() -> Any:
    """scripts/localstack.py (not a package), imported by path: install, start, stop."""
    spec = importlib.util.spec_from_file_location("ls", REPO / "scripts" / "localstack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ls"] = module  # its dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@contextmanager
def localstack(endpoint: str | None) -> Iterator[str]:
    """``endpoint`` if given (a running server), else a LocalStack started for the
    block (installed first if needed) and stopped after it."""
    if endpoint is not None:
        yield endpoint
        return
    ls = load_localstack()
    ls.install()
    server = ls.start_server(die_with_parent=True)
    try:
        yield server.endpoint
    finally:
        ls.stop_server(server)
