"""Every distribution builds; a fresh venv with the PyPI names works; the core alone explains.

Builds all wheels (scripts/build-dists.sh, without build isolation for speed)
and the plugin template, then installs them into a new virtual environment:
third-party dependencies come from the package index, sqsw's own only from the
built wheels (``--no-index``), so nothing of the development tree leaks in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PROJECTS = [REPO, *sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))]
TEMPLATE = REPO / "examples" / "plugin_template"

JOB = textwrap.dedent(
    """
    from sqsw_core import SQSEnv, create_standard_queue
    from sqsw_deadletter import DeadLetterQueue

    sqs = SQSEnv(session="memory", processor=["timing", "default"], backoff_policy="linear")
    create_standard_queue(sqs, "emails")
    done = []

    @sqs.queue("emails").processor("send")
    def send(to):
        done.append(to)

    send.delay(to="ada@example.com")
    result = sqs.queue("emails").process_batch()
    import sqsw_timing
    print("RESULT", result.succeeded_count(), done, len(sqsw_timing.TimingProcessor.durations))
    print("BACKOFF", type(sqs.backoff_policy).__name__, DeadLetterQueue.__name__)
    """
)


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def _third_party_requirements(names: list[str]) -> list[str]:
    requirements: list[str] = []
    for project in [*PROJECTS, TEMPLATE]:
        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        if meta["name"] in names:
            requirements += [r for r in meta["dependencies"] if not r.startswith("sqsw-")]
    return sorted(set(requirements))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheels_install_from_pypi_names_and_run_a_job(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(
        "bash",
        REPO / "scripts" / "build-dists.sh",
        dist,
        env={**os.environ, "SQSW_BUILD_ISOLATION": "0", "SQSW_BUILD_PYTHON": sys.executable},
    )
    template = shutil.copytree(TEMPLATE, tmp_path / "template")  # build/ stays out of the tree
    _run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, template)
    for project in PROJECTS:
        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        stem = meta["name"].replace("-", "_")
        wheel = dist / f"{stem}-{meta['version']}-py3-none-any.whl"
        assert (dist / f"{stem}-{meta['version']}.tar.gz").exists()
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            assert f"{stem}/py.typed" in names, wheel
            metadata = zf.read(f"{stem}-{meta['version']}.dist-info/METADATA").decode()
        assert f"Version: {meta['version']}" in metadata
        assert "License-Expression: MIT" in metadata
        assert "Description-Content-Type: text/markdown" in metadata
        entry_points = f"{stem}-{meta['version']}.dist-info/entry_points.txt"
        assert entry_points in names, f"{wheel} registers no plugin"

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    local = [*pip, "--no-index", "--find-links", dist]

    # The core alone: installs, an environment can be made, and encoding a job
    # explains what is missing (before any SQS call: the queue URL is never used).
    _run(*pip, *_third_party_requirements(["sqsw-core"]))
    _run(*local, "sqsw-core")
    _run(python, "-c", "from sqsw_core import SQSEnv; SQSEnv()", cwd=tmp_path)
    alone = subprocess.run(
        [
            python,
            "-c",
            "from sqsw_core import SQSEnv; "
            "SQSEnv().queue('q', queue_url='http://127.0.0.1:9/q').add_job('job', n=1)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert alone.returncode != 0
    assert "PluginError" in alone.stderr
    assert "No sqsw plugin named 'json' in group 'sqsw.codecs'" in alone.stderr
    assert "pip install sqsw-json" in alone.stderr

    # The README's install line (+ memory for a job without a server, + the template).
    names = ["sqsw-json", "sqsw-deadletter", "sqsw-memory", "sqsw-timing"]
    _run(*pip, *_third_party_requirements(names))
    _run(*local, *names)
    result = _run(python, "-c", JOB, cwd=tmp_path)
    assert "RESULT 1 ['ada@example.com'] 1" in result.stdout
    assert "BACKOFF LinearBackoff DeadLetterQueue" in result.stdout
    listing = _run(env_dir / "bin" / "sqsw", "plugins", "--json", cwd=tmp_path).stdout
    for name in ("json", "deadletter", "memory", "timing", "linear"):
        assert f'"name": "{name}"' in listing
    assert "sqsw-timing 0.1.0" in listing
