"""Configuration files, SQSW_* variables, flags, and SQSEnv.from_config / reconfigure."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from sqsw_core import ConfigurationError, PluginError, SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.config import find_config_file, load_settings, parse_shutdown
from sqsw_core.processors import Processor
from sqsw_core.queue import JobQueue
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown, NeverShutdown
from sqsw_memory import MemorySession

PYPROJECT = """
[project]
name = "myapp"

[tool.sqsw]
app = "myapp.worker:sqs"
codec = "json"
processor = ["default"]
queue_prefix = "file_"
concurrency = 8
shutdown = "idle=30"

[tool.sqsw.session]
name = "memory"
region_name = "eu-west-1"

[tool.sqsw.backoff_policy]
name = "constant"
backoff_value = 7
"""


def test_pyproject_found_upward_and_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    assert find_config_file(sub) == tmp_path / "pyproject.toml"
    settings = load_settings(cwd=sub, environ={})
    assert settings.get("app") == "myapp.worker:sqs"
    assert settings.get("concurrency") == 8
    assert (
        settings.source("concurrency")
        == f"{tmp_path / 'pyproject.toml'} [tool.sqsw] key 'concurrency'"
    )
    options = settings.env_options()
    assert isinstance(options["session"], MemorySession)
    assert options["session"].region_name == "eu-west-1"
    assert isinstance(options["backoff_policy"], ConstantBackoff)
    assert options["backoff_policy"].backoff_value == 7
    assert options["queue_prefix"] == "file_"
    assert options["processor"] == ["default"]


def test_pyproject_without_tool_sqsw_is_skipped_and_sqsw_toml_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_config_file(tmp_path) in (None, *[p / "sqsw.toml" for p in tmp_path.parents])
    (tmp_path / "sqsw.toml").write_text('queue_prefix = "toml_"\n')
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.get("queue_prefix") == "toml_"
    assert settings.source("queue_prefix") == f"{tmp_path / 'sqsw.toml'} key 'queue_prefix'"


def test_layers_environment_then_flags_win(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    environ = {
        "SQSW_QUEUE_PREFIX": "env_",
        "SQSW_CONCURRENCY": "12",
        "SQSW_PROCESSOR": "default, default",
        "SQSW_SESSION__REGION_NAME": '"ap-south-1"',
        "SQSW_ENDPOINT_URL": "http://ignored-here",  # read by AWSSession, not a setting
        "SQSW_TEST_ENDPOINT": "x",
    }
    settings = load_settings(cwd=tmp_path, environ=environ)
    assert settings.get("queue_prefix") == "env_"
    assert settings.get("concurrency") == 12
    assert settings.get("processor") == ["default", "default"]
    assert settings.source("concurrency") == "environment variable SQSW_CONCURRENCY"
    assert settings.options["session"]["region_name"] == "ap-south-1"
    settings.update({"concurrency": 3, "queue_prefix": None}, lambda k: f"flag {k}")
    assert settings.get("concurrency") == 3
    assert settings.get("queue_prefix") == "env_"


def test_changing_a_plugin_drops_the_options_given_for_the_previous_one(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    settings = load_settings(cwd=tmp_path, environ={"SQSW_BACKOFF_POLICY": "immediate"})
    assert "backoff_policy" not in settings.options
    assert settings.env_options()["backoff_policy"].get_visibility_timeout(None) == 0


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("concurency = 3\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(cwd=tmp_path, environ={})
    assert f"{tmp_path / 'sqsw.toml'} key 'concurency'" in str(info.value)
    assert "unknown sqsw setting 'concurency'" in str(info.value)


def test_bad_value_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(cwd=tmp_path, environ={"SQSW_CONCURRENCY": "many"})
    assert "environment variable SQSW_CONCURRENCY" in str(info.value)


def test_unknown_plugin_name_names_file_key_or_variable(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text('codec = "jsno"\n')
    with pytest.raises(PluginError) as info:
        load_settings(cwd=tmp_path, environ={}).env_options()
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'sqsw.toml'} key 'codec'")
    assert "Did you mean 'json'?" in message
    assert info.value.group == "sqsw.codecs"

    with pytest.raises(PluginError) as info:
        load_settings(cwd=tmp_path / "nowhere", environ={"SQSW_SESSION": "memroy"}).env_options()
    assert str(info.value).startswith("environment variable SQSW_SESSION")


def test_unknown_plugin_option_names_its_source(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text('[session]\nname = "memory"\nendpoint = "x"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(cwd=tmp_path, environ={}).env_options()
    assert f"{tmp_path / 'sqsw.toml'} key 'session'.endpoint" in str(info.value)
    assert "region_name" in str(info.value)  # what it accepts


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("codec = \n")
    with pytest.raises(ConfigurationError, match="invalid TOML"):
        load_settings(cwd=tmp_path, environ={})
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_shutdown_specs() -> None:
    assert isinstance(parse_shutdown("never")(), NeverShutdown)
    idle = parse_shutdown("idle=300")()
    assert isinstance(idle, IdleShutdown)
    assert idle.idle_seconds == 300
    tasks = parse_shutdown("max-tasks=5")()
    assert isinstance(tasks, MaxTasksShutdown)
    assert tasks.max_tasks == 5
    with pytest.raises(PluginError, match="Did you mean 'idle'"):
        parse_shutdown("idel=3")
    with pytest.raises(ConfigurationError, match="needs a number"):
        parse_shutdown("idle=soon")


def test_from_config_builds_an_env(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    env = SQSEnv.from_config(cwd=tmp_path, environ={})
    assert isinstance(env.session, MemorySession)
    assert env.queue_prefix == "file_"
    env = SQSEnv.from_config(tmp_path / "pyproject.toml", environ={}, queue_prefix="kw_")
    assert env.queue_prefix == "kw_"
    create_standard_queue(env, "jobs")
    seen: list[int] = []

    @env.queue("jobs").processor("job")
    def job(n: int) -> None:
        seen.append(n)

    job.delay(n=1)
    assert env.queue("jobs").process_batch().succeeded_count() == 1
    assert seen == [1]


class Tagging(Processor):
    calls: ClassVar[list[str]] = []

    def process(self, job_kwargs: dict[str, object], job_context: object = None) -> object:
        Tagging.calls.append(self.job_name)
        return super().process(job_kwargs, job_context)


def test_reconfigure_rebuilds_registered_processors_and_keeps_tasks() -> None:
    env = SQSEnv(MemorySession(), queue_prefix="a_")
    create_standard_queue(env, "jobs")
    queue: JobQueue = env.queue("jobs", backoff_policy=None)
    seen: list[tuple[int, object]] = []

    @queue.processor("job", pass_context=True)
    def job(n: int, context: object = None) -> None:
        seen.append((n, context))

    old_policy = env.backoff_policy
    env.reconfigure(processor=[Tagging, "default"], backoff_policy="immediate")
    assert isinstance(queue.processors["job"], Tagging)
    assert queue.processors["job"].pass_context is True
    assert queue.backoff_policy is env.backoff_policy is not old_policy
    with env.context(who="me"):
        job.delay(n=5)  # the task made before reconfigure still works
    assert queue.process_batch().succeeded_count() == 1
    assert Tagging.calls == ["job"]
    assert seen[0][0] == 5

    # A new session and prefix: caches dropped, the same queue object goes on working.
    env.reconfigure(session=MemorySession(), queue_prefix="b_")
    assert env.get_sqs_queue_name("jobs") == "b_jobs"
    create_standard_queue(env, "jobs")
    job.delay(n=6)
    assert queue.process_batch().succeeded_count() == 1
    assert seen[-1][0] == 6


def test_reconfigure_codec_and_accept() -> None:
    env = SQSEnv(MemorySession())
    env.reconfigure(codec="pickle")
    assert env.codec.content_type == "pickle"
    assert "pickle" in env.accepted_content_types
    env.reconfigure(codec="json", accept=["pickle_compat"])
    assert env.accepted_content_types == {"json", "pickle_compat"}
    with pytest.raises(PluginError):
        env.reconfigure(processor="nope")
    assert env.codec.content_type == "json"


def test_engine_ranges_checked_in_every_layer(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("prefetch = -1\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(cwd=tmp_path, environ={})
    assert str(info.value) == (
        f"{tmp_path / 'sqsw.toml'} key 'prefetch': prefetch must be an integer >= 0 "
        "(None or unset: automatic), got -1"
    )
    with pytest.raises(ConfigurationError, match="SQSW_GRACE_PERIOD: grace_period must be"):
        load_settings(use_file=False, environ={"SQSW_GRACE_PERIOD": "nan"})
    settings = load_settings(use_file=False, environ={})
    with pytest.raises(ConfigurationError, match="^flag wait_seconds: wait_seconds must be"):
        settings.update({"wait_seconds": 20.5}, lambda k: f"flag {k}")
    settings.update({"wait_seconds": 20, "prefetch": 0}, lambda k: f"flag {k}")
    assert (settings.get("wait_seconds"), settings.get("prefetch")) == (20.0, 0)


def test_integer_keys_take_no_fractions(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("concurrency = 7.9\n")
    with pytest.raises(ConfigurationError, match="concurrency must be an integer >= 1, got 7.9"):
        load_settings(cwd=tmp_path, environ={})
    with pytest.raises(ConfigurationError, match="max_message_size must be an integer >= 1"):
        load_settings(use_file=False, environ={"SQSW_MAX_MESSAGE_SIZE": "1e6"})


def test_shutdown_specs_need_finite_non_negative_numbers() -> None:
    for spec in ("idle=NaN", "idle=Infinity", "idle=1e999", "idle=-2", "idle=true"):
        with pytest.raises(ConfigurationError, match="needs a number >= 0 after '='"):
            parse_shutdown(spec, "option --shutdown")
    assert parse_shutdown("idle=0.5")().idle_seconds == 0.5


def test_variables_sqsw_reads_are_accepted_and_others_refused() -> None:
    accepted = {
        "SQSW_CONFIG": "",
        "SQSW_ENDPOINT_URL": "http://localhost:4566",
        "SQSW_REGION": "eu-west-1",
        "SQSW_PROFILE": "dev",
        "SQSW_SIGNING_KEYS": "k:0123456789abcdef",  # sqsw-signing owns SQSW_SIGNING_*
        "SQSW_TEST_ENDPOINT": "http://127.0.0.1:1",  # reserved for the test suite
        "SQSW_FAULT_SEED": "3",
        "SQSW_TEST_MODEL_PROFILE": "release",  # the engine model test's
        "SQSW_APP": "",  # a key, set but empty
        "SQSW_CODEC__INDENT": "2",
    }
    settings = load_settings(environ=accepted, use_file=False)
    assert settings.options == {"codec": {"indent": 2}}
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"SQSW_BACKOF_POLICY": "constant"}, use_file=False)
    assert str(info.value) == (
        "environment variable SQSW_BACKOF_POLICY is not one sqsw reads: did you mean "
        "SQSW_BACKOFF_POLICY? Rename or unset it."
    )
    with pytest.raises(ConfigurationError, match="'processor' takes no options"):
        load_settings(environ={"SQSW_PROCESSOR__LEVEL": "1"}, use_file=False)


def test_a_plugin_declares_its_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqsw-NAME`` owns ``SQSW_NAME_*``; any plugin may list variables in ``sqsw.variables``."""
    site = tmp_path / "site"
    for dist_name, entry_points in (
        ("sqsw_acme-1.0", "[sqsw.codecs]\nacme = acme:Codec\n"),
        ("billing_jobs-2.0", "[sqsw.variables]\nSQSW_BILLING_TOKEN = billing_jobs:TOKEN_VAR\n"),
    ):
        dist = site / f"{dist_name}.dist-info"
        dist.mkdir(parents=True)
        name, version = dist_name.split("-")
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(entry_points)
    environ = {"SQSW_ACME_REGION": "x", "SQSW_BILLING_TOKEN": "t"}
    with pytest.raises(ConfigurationError, match="SQSW_ACME_REGION is not one sqsw reads"):
        load_settings(environ=environ, use_file=False)
    monkeypatch.syspath_prepend(str(site))
    load_settings(environ=environ, use_file=False)
    with pytest.raises(ConfigurationError, match="did you mean SQSW_BILLING_TOKEN"):
        load_settings(environ={"SQSW_BILING_TOKEN": "t"}, use_file=False)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('parameter_validation = "yes"', "'parameter_validation' of the sqsw.sessions plugin"),
        ("max_pool_connections = true", "must be an integer, got True"),
        ("connect_timeout = 'soon'", "must be a number, got 'soon'"),
        ("region_name = 5", "must be a string or unset (None), got 5"),
    ],
)
def test_a_session_option_of_the_wrong_type_names_its_key(
    tmp_path: Path, line: str, fragment: str
) -> None:
    (tmp_path / "sqsw.toml").write_text(f'[session]\nname = "aws"\n{line}\n')
    settings = load_settings(cwd=tmp_path, environ={})
    with pytest.raises(ConfigurationError, match="sqsw.toml") as raised:
        settings.env_options()
    assert fragment in str(raised.value)


def test_session_options_of_the_right_types_are_taken(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text(
        '[session]\nname = "aws"\ndirect_requests = false\nconnect_timeout = 3\n'
        'region_name = "eu-west-1"\nmax_pool_connections = 20\n'
    )
    session = load_settings(cwd=tmp_path, environ={}).env_options()["session"]
    assert session.direct_requests is False
    assert session.connect_timeout == 3
    assert session.max_pool_connections == 20
