"""sqs-workers' ``SQSEnv`` API, unchanged beyond imports (issue 16, [compat]).

``sqs.codec = ...``, ``sqs.queue(name, ...)`` called again, ``process_queues(...,
shutdown_policy=...)`` and an environment with the core alone (no sqsw-json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqsw_cloudwatch import RawQueue
from sqsw_core import SQSEnv
from sqsw_core.backoff_policies import ExponentialBackoff, ImmediateReturn
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.queue import JobQueue
from sqsw_core.queue_management import create_standard_queue
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown, OrShutdown
from sqsw_deadletter import DeadLetterQueue
from sqsw_pickle import PickleCodec
from tests.helpers import expect_counts, receive_all
from tests.localstack_server import REGION, localstack_endpoint

# -- sqs.codec = ... ------------------------------------------------------------


@pytest.mark.parametrize("spec", ["pickle", PickleCodec()], ids=["name", "object"])
def test_codec_set_as_in_sqs_workers(sqs: SQSEnv, spec: Any) -> None:
    create_standard_queue(sqs, "jobs")
    queue = sqs.queue("jobs")
    seen: list[Any] = []

    @queue.processor("job")
    def job(value: Any) -> None:
        seen.append(value)

    sqs.codec = spec
    assert isinstance(sqs.codec, PickleCodec)
    assert "pickle" in sqs.accepted_content_types
    job.delay(value={1, 2})  # a set: pickle encodes it, JSON could not
    [message] = receive_all(queue, expected=1)
    assert message["MessageAttributes"]["ContentType"]["StringValue"] == "pickle"
    assert queue.process_batch(wait_seconds=1).succeeded_count() == 1
    assert seen == [{1, 2}]
    expect_counts(queue, (0, 0, 0))


def test_codec_unknown_name_is_one_clear_error(sqs: SQSEnv) -> None:
    with pytest.raises(ConfigurationError) as caught:
        sqs.codec = "pikle"
    text = str(caught.value)
    assert text.startswith("sqs.codec = 'pikle': No sqsw plugin named 'pikle'")
    assert "Did you mean 'pickle'?" in text
    assert sqs.codec.content_type == "json"  # unchanged

    with pytest.raises(ConfigurationError, match=r"sqs.codec = 42: .* is not a codec"):
        sqs.codec = 42  # type: ignore[assignment]
    assert sqs.codec.content_type == "json"


# -- sqs.queue(name, ...) again ---------------------------------------------------


def test_queue_again_with_another_type_is_refused(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "work")
    create_standard_queue(sqs, "work_dead")
    work = sqs.queue("work")
    dead = sqs.queue("work_dead", DeadLetterQueue.maker(work))

    # No arguments, the same ones, or the same type by another name: the same queue.
    assert sqs.queue("work_dead") is dead
    assert sqs.queue("work_dead", DeadLetterQueue.maker(work)) is dead
    assert sqs.queue("work_dead", DeadLetterQueue.maker("work")) is dead
    assert sqs.queue("work_dead", "deadletter") is dead
    assert sqs.queue("work", "job") is sqs.queue("work", JobQueue) is work

    with pytest.raises(ConfigurationError) as caught:
        sqs.queue("work_dead", "job")
    text = str(caught.value)
    assert "queue 'work_dead' was created with type=DeadLetterQueue.maker(upstream_queue=" in text
    assert "asks for type=JobQueue" in text
    assert "get it with sqs.queue('work_dead')" in text

    with pytest.raises(ConfigurationError, match=r"'work' was created with type=JobQueue.*"):
        sqs.queue("work", DeadLetterQueue.maker(work))
    with pytest.raises(ConfigurationError, match=r"asks for type=RawQueue"):
        sqs.queue("work", RawQueue)
    assert type(sqs.queue("work")) is JobQueue


def test_queue_again_with_another_backoff_or_option_is_refused(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "retries")
    queue = sqs.queue("retries", backoff_policy=ExponentialBackoff(base=3))
    assert sqs.queue("retries", backoff_policy=ExponentialBackoff(base=3)) is queue
    assert sqs.queue("retries", "job", ExponentialBackoff(base=3)) is queue

    with pytest.raises(ConfigurationError) as caught:
        sqs.queue("retries", backoff_policy=ImmediateReturn())
    text = str(caught.value)
    assert (
        "queue 'retries' was created with type=JobQueue, backoff_policy=ExponentialBackoff(" in text
    )
    assert "asks for backoff_policy=ImmediateReturn()" in text
    assert queue.backoff_policy.base == 3  # type: ignore[attr-defined]

    dead = sqs.queue("retries_dead", "deadletter", upstream="retries", delay_seconds=5)
    assert sqs.queue("retries_dead", "deadletter", delay_seconds=5) is dead
    with pytest.raises(ConfigurationError, match=r"delay_seconds=5.*asks for delay_seconds=0"):
        sqs.queue("retries_dead", delay_seconds=0)
    with pytest.raises(ConfigurationError, match=r"asks for keep_deduplication_id=True"):
        sqs.queue("retries_dead", keep_deduplication_id=True)


# -- process_queues(shutdown_policy=...) ------------------------------------------


def _two_queues_with_jobs(sqs: SQSEnv, ran: list[str]) -> list[JobQueue]:
    queues = []
    for name in ("first", "second"):
        create_standard_queue(sqs, name)
        queue = sqs.queue(name)

        @queue.processor("job")
        def job(n: int, queue_name: str = name) -> None:
            ran.append(f"{queue_name}:{n}")

        for n in range(2):
            queue.add_job("job", n=n)
        queues.append(queue)
    return queues


def test_process_queues_takes_a_shutdown_policy_copied_per_queue(sqs: SQSEnv) -> None:
    ran: list[str] = []
    queues = _two_queues_with_jobs(sqs, ran)
    # Shared, the policy would stop both queues after 2 jobs in all, leaving 2.
    policy = OrShutdown(MaxTasksShutdown(2), IdleShutdown(3))
    stats = sqs.process_queues(["first", "second"], shutdown_policy=policy, wait_seconds=1)
    assert sorted(ran) == ["first:0", "first:1", "second:0", "second:1"]
    assert {name: s.succeeded for name, s in stats.items()} == {"first": 2, "second": 2}
    assert policy.policies[0]._tasks == 0  # type: ignore[attr-defined]  # the given one unused
    for queue in queues:
        expect_counts(queue, (0, 0, 0))


def test_process_queues_idle_shutdown_as_in_the_issue(sqs: SQSEnv) -> None:
    ran: list[str] = []
    queues = _two_queues_with_jobs(sqs, ran)
    stats = sqs.process_queues(
        ["first", "second"], shutdown_policy=IdleShutdown(0.5), wait_seconds=1
    )
    assert len(ran) == 4 and set(stats) == {"first", "second"}
    # A policy where the maker goes (positionally) is taken the same way.
    queues[0].add_job("job", n=9)
    sqs.process_queues(["first", "second"], IdleShutdown(0.5), wait_seconds=1)
    assert "first:9" in ran
    for queue in queues:
        expect_counts(queue, (0, 0, 0))


def test_process_queues_policy_arguments_checked(sqs: SQSEnv) -> None:
    with pytest.raises(ConfigurationError, match="either shutdown_policy= .* not both"):
        sqs.process_queues(["a"], lambda: IdleShutdown(1), shutdown_policy=IdleShutdown(1))
    with pytest.raises(ConfigurationError, match=r"shutdown_policy=5 is not a shutdown policy"):
        sqs.process_queues(["a"], shutdown_policy=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="is not a callable returning a shutdown"):
        sqs.process_queues(["a"], 5)  # type: ignore[arg-type]


# -- the core alone (no sqsw-json) ------------------------------------------------

#: Runs first in the child: sqsw-json is gone as if uninstalled, its module and
#: its distribution (so its entry points) both.
_HIDE_SQSW_JSON = """
import importlib.metadata as md
import sys

_discover = md.Distribution.discover.__func__

def _without_json(cls, **kwargs):
    for dist in _discover(cls, **kwargs):
        if (dist.metadata["Name"] or "").replace("_", "-").lower() != "sqsw-json":
            yield dist

md.Distribution.discover = classmethod(_without_json)
sys.modules["sqsw_json"] = None
"""

_CORE_ALONE = """
import json, sys
from sqsw_core import SQSEnv, plugins
from sqsw_core.cli import cli
from sqsw_core.exceptions import PluginError
from sqsw_core.queue_management import create_standard_queue

out = {"installed": plugins.installed_names(plugins.CODECS)}
try:
    import sqsw_json
except ImportError:
    out["import"] = "ImportError"
session, prefix = SESSION, PREFIX
sqs = SQSEnv(session, queue_prefix=prefix, backoff_policy="immediate")
create_standard_queue(sqs, "q")
queue = sqs.queue("q")
ran = []

@queue.processor("job")
def job(n):
    ran.append(n)

out["queues"] = sqs.get_all_known_queues()
try:
    job.delay(n=1)
except PluginError as exc:
    out["add_job"] = str(exc)
queue.add_raw_job("job", '{"n": 2}', "{}", "json")  # as a JSON producer would send it
result = queue.process_batch(wait_seconds=1)
out["failed"], out["ran"] = result.failed_count(), ran
attributes = sqs.sqs_client.get_queue_attributes(
    QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
)["Attributes"]
out["visible"] = int(attributes["ApproximateNumberOfMessages"])
print(json.dumps(out))
sys.stdout.flush()
cli(["queue", "list", "--json", "--queue-prefix", prefix], prog_name="sqsw")
"""


def _child_env(tmp_path: Path, backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQSW_")}
    # stevedore caches entry points on disk by sys.path: keep this child's apart.
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    if backend == "memory":
        env["SQSW_SESSION"] = "memory"
    else:
        env["SQSW_SESSION"] = "aws"
        env["SQSW_SESSION__ENDPOINT_URL"] = str(localstack_endpoint())
        env["SQSW_SESSION__REGION_NAME"] = REGION
        env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "test"
    return env


def test_core_alone_needs_sqsw_json_only_for_jobs(
    make_env: Callable[..., SQSEnv], backend: str, queue_prefix: str, tmp_path: Path
) -> None:
    parent = make_env()  # skips when the backend is not available; cleans up the queues
    if backend == "memory":
        session = "'memory'"
    else:
        session = (
            f"__import__('sqsw_core').AWSSession(endpoint_url={localstack_endpoint()!r}, "
            f"region_name={REGION!r}, aws_access_key_id='test', aws_secret_access_key='test')"
        )
    script = _HIDE_SQSW_JSON + textwrap.dedent(_CORE_ALONE).replace("SESSION", session).replace(
        "PREFIX", repr(queue_prefix)
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_child_env(tmp_path, backend),
    )
    assert child.returncode == 0, child.stderr
    first, listed = child.stdout.splitlines()[0], child.stdout.splitlines()[1:]
    out = json.loads(first)
    # Hidden as if uninstalled: no entry point, no module.
    assert "json" not in out["installed"] and out["import"] == "ImportError"
    assert out["queues"] == ["q"]  # SQSEnv() and queue management work
    # Encoding a job: the one clear error, and nothing was sent.
    assert out["add_job"].startswith("No sqsw plugin named 'json' in group 'sqsw.codecs'")
    assert out["add_job"].endswith("Install it with: pip install sqsw-json")
    # Decoding one: refused with the same advice, the message kept for a worker that can.
    assert out["failed"] == 1 and out["ran"] == []
    assert "cannot decode message" in child.stderr
    assert "Install it with: pip install sqsw-json" in child.stderr
    assert out["visible"] == 1
    # `sqsw queue list` works too.
    if backend == "memory":
        assert isinstance(json.loads("".join(listed)), list)
    else:
        assert json.loads("".join(listed)) == ["q"]
        expect_counts(parent.queue("q"), (1, 0, 0))
