"""The plugin system as users meet it: names, objects, third-party packages, errors."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqsw_core import PluginError, SQSEnv, create_standard_queue, plugins
from sqsw_core.processors import Processor


@pytest.fixture
def third_party_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throwaway distribution, made the way pip installs one: code plus .dist-info.

    It registers a processor named ``shouting`` under ``sqsw.processors``
    through real package metadata, nothing else.
    """
    pkg = tmp_path / "site" / "shouting_sqsw"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from sqsw_core.processors import Processor

            CALLS = []

            class ShoutingProcessor(Processor):
                def process(self, job_kwargs, job_context=None):
                    CALLS.append((self.queue_name, self.job_name))
                    upper = {k: v.upper() for k, v in job_kwargs.items()}
                    return super().process(upper, job_context)
            """
        )
    )
    dist = tmp_path / "site" / "shouting_sqsw-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shouting-sqsw\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        "[sqsw.processors]\nshouting = shouting_sqsw:ShoutingProcessor\n"
    )
    (dist / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    plugins.clear_cache()
    yield tmp_path / "site"
    plugins.clear_cache()
    sys.modules.pop("shouting_sqsw", None)


def test_third_party_processor_is_found_by_name(
    third_party_package: Path, session: object, queue_prefix: str
) -> None:
    assert "shouting" in plugins.installed_names(plugins.PROCESSORS)
    assert plugins.providers(plugins.PROCESSORS)["shouting"] == "shouting-sqsw 1.2.3"

    env = SQSEnv(session, queue_prefix=queue_prefix, processor="shouting")
    create_standard_queue(env, "greetings")
    heard: list[str] = []

    @env.queue("greetings").processor("greet")
    def greet(name: str) -> None:
        heard.append(name)

    greet.delay(name="ada")
    assert env.queue("greetings").process_batch(wait_seconds=2).succeeded_count() == 1
    assert heard == ["ADA"]
    import shouting_sqsw  # type: ignore[import-not-found]

    assert shouting_sqsw.CALLS == [("greetings", "greet")]
    env.sqs_client.delete_queue(QueueUrl=env.get_queue_url("greetings"))


def test_misspelled_plugin_name_names_group_installed_and_close_match(
    third_party_package: Path,
) -> None:
    with pytest.raises(PluginError) as info:
        SQSEnv("memory", processor="shoutng")
    err = info.value
    assert err.group == "sqsw.processors"
    assert err.name == "shoutng"
    assert err.suggestion == "shouting"
    assert {"default", "shouting"} <= set(err.installed)
    text = str(err)
    assert "'shoutng'" in text and "'sqsw.processors'" in text
    assert "Did you mean 'shouting'?" in text
    assert "default" in text


def test_unknown_codec_lists_installed_codecs() -> None:
    with pytest.raises(PluginError) as info:
        SQSEnv("memory", codec="jsno")
    assert info.value.suggestion == "json"
    assert "pickle" in info.value.installed
    assert "Did you mean 'json'?" in str(info.value)


def test_known_plugin_that_is_not_installed_names_its_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(plugins.KNOWN_PROVIDERS[plugins.CODECS], "msgpack", "sqsw-msgpack")
    with pytest.raises(PluginError, match=r"pip install sqsw-msgpack") as info:
        SQSEnv("memory", codec="msgpack")
    assert info.value.package == "sqsw-msgpack"


def test_plugin_that_fails_to_import_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "broken_codec").mkdir(parents=True)
    (site / "broken_codec" / "__init__.py").write_text("import not_a_real_module_xyz\n")
    dist = site / "broken_codec-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-codec\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sqsw.codecs]\nbroken = broken_codec:Codec\n")
    monkeypatch.syspath_prepend(str(site))
    plugins.clear_cache()
    try:
        with pytest.raises(PluginError, match="failed to load.*not_a_real_module_xyz"):
            SQSEnv("memory", codec="broken")
    finally:
        plugins.clear_cache()


def test_plugins_by_name_and_by_object_are_equivalent() -> None:
    from sqsw_core.backoff_policies import ConstantBackoff, ImmediateReturn
    from sqsw_json import JSONCodec
    from sqsw_memory import MemorySession

    by_name = SQSEnv("memory", codec="json", backoff_policy="immediate", processor="default")
    by_object = SQSEnv(
        MemorySession(), codec=JSONCodec(), backoff_policy=ConstantBackoff(0), processor=Processor
    )
    assert type(by_name.session) is type(by_object.session) is MemorySession
    assert type(by_name.codec) is type(by_object.codec) is JSONCodec
    assert isinstance(by_name.backoff_policy, ImmediateReturn)
    assert by_name.processor_maker is by_object.processor_maker is Processor


def test_object_that_is_not_a_plugin_is_refused() -> None:
    with pytest.raises(PluginError, match="is not a codec"):
        SQSEnv("memory", codec=object())  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="Processor subclass"):
        SQSEnv("memory", processor=dict)  # type: ignore[arg-type]


def test_core_defaults_are_registered_through_entry_points() -> None:
    assert {"aws"} <= set(plugins.installed_names(plugins.SESSIONS))
    assert {"default"} <= set(plugins.installed_names(plugins.PROCESSORS))
    assert {"job"} <= set(plugins.installed_names(plugins.QUEUE_TYPES))
    assert {"exponential", "constant", "immediate"} <= set(plugins.installed_names(plugins.BACKOFF))
    assert {"never", "idle", "max_tasks"} <= set(plugins.installed_names(plugins.SHUTDOWN))
    assert {"json", "pickle", "pickle_compat"} <= set(plugins.installed_names(plugins.CODECS))
    assert "memory" in plugins.installed_names(plugins.SESSIONS)


def test_processors_compose_first_is_outermost(sqs: SQSEnv) -> None:
    order: list[str] = []

    class Outer(Processor):
        def process(self, job_kwargs, job_context=None):  # type: ignore[no-untyped-def]
            order.append("outer")
            return super().process(job_kwargs, job_context)

    class Inner(Processor):
        def process(self, job_kwargs):  # type: ignore[no-untyped-def,override]
            order.append("inner")
            return super().process(job_kwargs)

    env = SQSEnv(sqs.session, queue_prefix=sqs.queue_prefix, processor=[Outer, Inner])
    create_standard_queue(env, "q")

    @env.queue("q").processor("job", pass_context=True)
    def job(context=None):  # type: ignore[no-untyped-def]
        order.append(f"job:{context.get('who')}")

    with env.context(who="me"):
        job.delay()
    env.queue("q").process_batch(wait_seconds=2)
    assert order == ["outer", "inner", "job:me"]
