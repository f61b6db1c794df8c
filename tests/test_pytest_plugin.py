"""The pytest plugin shipped with sqsw-memory, as a user's test suite meets it."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

USER_APP = """
from sqsw_core import SQSEnv

sqs = SQSEnv(session="memory")  # production would say SQSEnv() / from_config()
emails = sqs.queue("emails")
sent = []


@emails.processor("send_email")
def send_email(to, subject="hi"):
    sent.append(to)
    if to.endswith("@example.com"):
        receipts.delay(to=to)


receipts = sqs.queue("receipts").processor("receipt")(lambda to: sent.append("receipt:" + to))
"""

USER_TESTS = """
import pytest

import myapp


def test_fixture_env_runs_jobs(sqsw_env, sqsw_enqueued, run_jobs):
    done = []

    @sqsw_env.queue("work").processor("add")
    def add(a, b):
        done.append(a + b)

    add.delay(a=1, b=2)
    add.delay(a=3, b={"x": 1} and 4)
    assert [job.kwargs for job in sqsw_enqueued("work")] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert len(sqsw_enqueued("work")) == 2  # peeking consumes nothing
    sqsw_env.assert_enqueued("work", "add", a=3)
    with pytest.raises(AssertionError, match="no job 'add'"):
        sqsw_env.assert_enqueued("work", "add", a=99)
    result = run_jobs("work")
    assert result.succeeded_count() == 2
    assert sorted(done) == [3, 7]
    assert sqsw_enqueued("work") == []


def test_adopting_the_apps_env(sqsw_env):
    app = sqsw_env.adopt(myapp.sqs)
    myapp.send_email.delay(to="ada@example.com")
    job = app.assert_enqueued("emails", "send_email", to="ada@example.com")
    assert job.job_name == "send_email"
    app.run_until_idle("emails", "receipts")
    assert myapp.sent == ["ada@example.com", "receipt:ada@example.com"]


def test_failures_are_counted_not_raised(sqsw_env, run_jobs):
    @sqsw_env.queue("bad", backoff_policy="constant").processor("boom")
    def boom():
        raise ValueError("nope")

    boom.delay()
    result = run_jobs("bad")
    assert result.succeeded_count() == 0
    assert {m.message_id for m in result.failed} == {sqsw_env.enqueued("bad")[0].message_id}


def test_async_jobs_run(sqsw_env, run_jobs):
    import asyncio

    done = []

    @sqsw_env.queue("io").processor("fetch")
    async def fetch(n):
        await asyncio.sleep(0.01)
        done.append(n)

    fetch.delay(n=1)
    fetch.delay(n=2)
    assert run_jobs("io").succeeded_count() == 2
    assert sorted(done) == [1, 2]
    assert sqsw_env.enqueued("io") == []


@pytest.mark.anyio
async def test_from_an_async_test(sqsw_env, sqsw_enqueued, run_jobs):
    done = []

    @sqsw_env.queue("io2").processor("fetch")
    async def fetch(n):
        done.append(n)

    await fetch.delay_async(n=7)
    assert [job.kwargs for job in sqsw_enqueued("io2")] == [{"n": 7}]
    assert run_jobs("io2").succeeded_count() == 1
    assert done == [7]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def sqsw_env_options():
    return {"queue_prefix": "custom_"}


def test_options_fixture(sqsw_env):
    assert sqsw_env.get_sqs_queue_name("x") == "custom_x"
"""


def test_user_suite_uses_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=textwrap.dedent(USER_APP))
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=6)


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    text = result.stdout.str()
    for name in ("sqsw_env", "sqsw_enqueued", "run_jobs", "sqsw_env_options"):
        assert name in text
