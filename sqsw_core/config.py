"""Configuration: ``[tool.sqsw]`` in pyproject.toml or ``sqsw.toml``, ``SQSW_*`` variables, flags.

Layers apply in order, later wins: the config file (found from the current
directory upward, or given), then environment variables, then command-line
flags (or keyword arguments of :meth:`SQSEnv.from_config`). Every value keeps
where it came from, so an unknown key, a value out of range (see
:mod:`sqsw_core.engine_options`) or a plugin that is not installed is reported
with its file and key, its variable name or its flag. An ``SQSW_*`` variable
sqsw does not read is an error too, with the closest known name.

::

    [tool.sqsw]
    app = "myapp.worker:sqs"
    codec = "json"
    processor = ["otel", "default"]
    queue_prefix = "prod_"
    concurrency = 32
    shutdown = "idle=300"

    [tool.sqsw.session]          # a plugin with options: a table with its name
    name = "aws"
    endpoint_url = "http://127.0.0.1:4566"

In ``sqsw.toml`` the same keys sit at the top level.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqsw_core import plugins
from sqsw_core.engine_options import (
    PRIORITIES,
    RANGES,
    check_option,
    check_shutdown_argument,
    describe,
    parse_weights,
    show,
)
from sqsw_core.exceptions import ConfigurationError, PluginError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ENV_PREFIX", "KEYS", "Settings", "find_config_file", "load_settings"]

#: Prefix of the environment variables read: ``SQSW_<KEY>``, ``SQSW_<PLUGIN>__<OPTION>``.
ENV_PREFIX = "SQSW_"
#: Variable naming a config file (like ``--config``).
CONFIG_ENV = "SQSW_CONFIG"

#: Plugin keys whose value is a name, or a table with ``name`` and the plugin's options.
PLUGIN_KEYS: dict[str, str] = {
    "session": plugins.SESSIONS,
    "codec": plugins.CODECS,
    "backoff_policy": plugins.BACKOFF,
}

#: Every key and the type of its value (``"plugin"``: name or table; ``"names"``: list).
KEYS: dict[str, str] = {
    "app": "str",
    "session": "plugin",
    "codec": "plugin",
    "backoff_policy": "plugin",
    "processor": "names",
    "accept": "names",
    "queue_prefix": "str",
    "max_message_size": "int",
    "max_delay_hop": "int",
    "job_time_limit": "float",
    "concurrency": "int",
    "workers": "int",
    "shutdown": "str",
    "wait_seconds": "float",
    "prefetch": "int",
    "pollers": "int",
    "grace_period": "float",
    "max_job_duration": "float",
    "priority": "str",
    "weights": "weights",
    "log_format": "str",
    "health_port": "int",
    "metrics_port": "int",
}

#: ``log_format``'s values: ``text`` (lines for people) or ``json`` (one object a line).
LOG_FORMATS = ("text", "json")

#: Keys that configure the ``SQSEnv`` (what :meth:`Settings.env_options` reads, in this
#: order); the others configure ``sqsw run``.
ENV_KEYS = (
    "session",
    "codec",
    "backoff_policy",
    "processor",
    "accept",
    "queue_prefix",
    "max_message_size",
    "max_delay_hop",
    "job_time_limit",
)

_DEFAULT_PLUGIN = {"session": "aws", "codec": "json", "backoff_policy": "exponential"}


def _convert(key: str, value: Any, source: str) -> Any:
    kind = KEYS[key]
    if kind == "weights":
        return parse_weights(value, source)
    try:
        if kind == "names":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError("a name or a list of names")
            return value
        if kind == "int":
            # Whole numbers only: 2.5 (or "2.5") is refused, not truncated to 2.
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError
            return float(value)
        if not isinstance(value, str):
            raise TypeError("a string")
        return value
    except (TypeError, ValueError) as exc:
        if key in RANGES:
            expected = describe(key)
        elif isinstance(exc, TypeError) and exc.args:
            expected = exc.args[0]
        else:
            expected = {"int": "an integer", "float": "a number"}.get(kind, f"a valid {kind}")
        raise ConfigurationError(f"{source}: {key} must be {expected}, got {show(value)}") from None


def _option_value(text: str) -> Any:
    """A plugin option given as text: JSON when it parses, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class Settings:
    """Merged configuration with the source of every value."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    #: Options of the plugin keys (session, codec, backoff_policy), and their sources.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    option_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The text of options given as ``SQSW_<PLUGIN>__<OPTION>``, kept for the options a
    #: plugin declares as strings (``1234`` stays ``"1234"`` there, not the JSON number).
    option_texts: dict[str, dict[str, str]] = field(default_factory=dict)
    config_file: Path | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def source(self, key: str) -> str:
        return self.sources.get(key, f"the default {key}")

    def set(self, key: str, value: Any, source: str) -> None:
        """Set ``key`` from ``source`` (a plugin key takes a name or a ``{name, ...}`` dict)."""
        if key not in KEYS:
            raise ConfigurationError(
                f"{source}: unknown sqsw setting {key!r}; known: {', '.join(sorted(KEYS))}"
            )
        if KEYS[key] == "plugin" and isinstance(value, dict):
            options = dict(value)
            name = options.pop("name", None)
            if name is not None:
                self.set(key, name, f"{source}.name")
            for option, option_value in options.items():
                self.set_option(key, option, option_value, f"{source}.{option}")
            return
        if KEYS[key] == "plugin" and not isinstance(value, str):
            raise ConfigurationError(
                f"{source}: {key} must be a plugin name or a table with 'name' and options, "
                f"got {value!r}"
            )
        value = _convert(key, value, source)
        if key in RANGES:
            check_option(key, value, source)
        if key == "priority" and value not in PRIORITIES:
            raise ConfigurationError(
                f"{source}: priority must be 'strict' or 'weighted', got {show(value)}"
            )
        if key == "log_format" and value not in LOG_FORMATS:
            raise ConfigurationError(
                f"{source}: log_format must be 'text' or 'json', got {show(value)}"
            )
        if KEYS[key] == "plugin" and value != self.values.get(key, _DEFAULT_PLUGIN[key]):
            # Options belong to the plugin they were given for.
            self.options.pop(key, None)
            self.option_sources.pop(key, None)
            self.option_texts.pop(key, None)
        self.values[key] = value
        self.sources[key] = source

    def set_option(
        self, key: str, option: str, value: Any, source: str, text: str | None = None
    ) -> None:
        """Set a plugin option; ``text``: the variable's text ``value`` was parsed from."""
        if KEYS.get(key) != "plugin":
            raise ConfigurationError(
                f"{source}: {key!r} takes no options (only {', '.join(PLUGIN_KEYS)} do)"
            )
        self.options.setdefault(key, {})[option] = value
        self.option_sources.setdefault(key, {})[option] = source
        texts = self.option_texts.setdefault(key, {})
        if text is None:
            texts.pop(option, None)
        else:
            texts[option] = text

    def update(self, overrides: Mapping[str, Any], source: Callable[[str], str]) -> None:
        """Apply values that are not ``None`` (flags, keyword arguments)."""
        for key, value in overrides.items():
            if value is not None:
                self.set(key, value, source(key))

    # -- building objects ------------------------------------------------------

    def plugin(self, key: str, check: Callable[[Any], bool], what: str) -> Any:
        """The plugin object of ``key`` made with its options; errors name their source."""
        group = PLUGIN_KEYS[key]
        name = self.values.get(key, _DEFAULT_PLUGIN[key])
        source = self.source(key)
        options = self.options.get(key, {})
        try:
            factory = plugins.load(group, name)
        except PluginError as exc:
            raise _with_source(exc, source) from None
        _check_options(factory, options, self.option_sources.get(key, {}), group, name)
        texts = self.option_texts.get(key, {})
        options = {
            option: texts[option] if option in texts and _takes_text(factory, option) else value
            for option, value in options.items()
        }
        _check_option_types(factory, options, self.option_sources.get(key, {}), group, name)
        return plugins.resolve(group, name, check, what=what, options=options)

    def processors(self) -> list[str] | None:
        names: list[str] | None = self.values.get("processor")
        if names is None:
            return None
        for name in names:
            try:
                plugins.load(plugins.PROCESSORS, name)
            except PluginError as exc:
                raise _with_source(exc, self.source("processor")) from None
        return names

    def env_options(self) -> dict[str, Any]:
        """Keyword arguments for ``SQSEnv(...)`` (or ``reconfigure``) for the keys set here."""
        from sqsw_core.backoff_policies import is_backoff_policy
        from sqsw_core.codecs import _is_codec
        from sqsw_core.sessions import is_session

        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "session": (is_session, "a session"),
            "codec": (_is_codec, "a codec"),
            "backoff_policy": (is_backoff_policy, "a backoff policy"),
        }
        out: dict[str, Any] = {}
        for key in ENV_KEYS:
            if KEYS[key] == "plugin":
                if key in self.values or key in self.options:
                    out[key] = self.plugin(key, *checks[key])
            elif key == "processor":
                processors = self.processors()
                if processors is not None:
                    out[key] = processors
            elif key in self.values:
                out[key] = self.values[key]
        return out

    def shutdown_policy_maker(self) -> Callable[[], Any]:
        """A factory of the shutdown policy named by ``shutdown`` (``never`` by default)."""
        spec = str(self.values.get("shutdown", "never"))
        return parse_shutdown(spec, self.source("shutdown"))


def parse_shutdown(spec: str, source: str = "shutdown") -> Callable[[], Any]:
    """``never``, ``idle=SECONDS``, ``max-tasks=N`` (any ``sqsw.shutdown`` plugin: ``name=arg``)."""
    name, _, arg = spec.partition("=")
    name = name.strip().replace("-", "_")
    try:
        factory = plugins.load(plugins.SHUTDOWN, name)
    except PluginError as exc:
        raise _with_source(exc, source) from None
    args: list[Any] = []
    if arg.strip():
        value = _option_value(arg.strip())
        check_shutdown_argument(spec, value, source)
        args.append(value)
    try:
        factory(*args)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{source}: bad shutdown policy {spec!r}: {exc}") from None
    return lambda: factory(*args)


def _with_source(exc: PluginError, source: str) -> PluginError:
    return PluginError(
        f"{source}: {exc}",
        group=exc.group,
        name=exc.name,
        installed=exc.installed,
        suggestion=exc.suggestion,
        package=exc.package,
    )


#: Annotation names that make an option more than text: a variable's JSON is kept then.
_NOT_TEXT = {"int", "float", "bool", "list", "dict", "Mapping", "Sequence", "Any", "object"}


def _annotation_names(annotation: Any) -> set[str]:
    """The top-level type names of an annotation: ``str | bytes | None`` -> str, bytes, None."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    names: set[str] = set()
    depth, start = 0, 0
    for i, char in enumerate(text + "|"):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and depth == 0:
            part = text[start:i].strip()
            names.add(part.partition("[")[0].rpartition(".")[2])
            start = i + 1
    if names & {"Optional", "Union"}:  # Optional[str], Union[str, bytes]
        inner = text.partition("[")[2].rpartition("]")[0]
        names |= {n.strip().rpartition(".")[2] for n in inner.split(",")}
    return names


def _takes_text(factory: Any, option: str) -> bool:
    """Whether ``factory`` declares ``option`` as a string (``str``, ``str | bytes | None``,
    or no annotation and a string default) and not also as a number, flag or container:
    then a ``SQSW_<PLUGIN>__<OPTION>`` value is passed as its text, never parsed as JSON."""
    try:
        param = inspect.signature(factory).parameters.get(option)
    except (TypeError, ValueError):
        return False
    if param is None:
        return False
    if param.annotation is inspect.Parameter.empty:
        return isinstance(param.default, str)
    names = _annotation_names(param.annotation)
    return "str" in names and not names & _NOT_TEXT


def _check_options(
    factory: Any, options: dict[str, Any], sources: dict[str, str], group: str, name: str
) -> None:
    if not options:
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for option in options:
        if option not in accepted:
            raise ConfigurationError(
                f"{sources.get(option, option)}: unknown option {option!r} for the {group} "
                f"plugin {name!r}; it accepts: {', '.join(accepted) or 'no options'}"
            )


def _check_option_types(
    factory: Any, options: dict[str, Any], sources: dict[str, str], group: str, name: str
) -> None:
    """Refuse a value of the wrong type for an option annotated with simple types only
    (``direct_requests = "nope"`` for a ``bool``), naming where it came from."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    for option, value in options.items():
        if option not in params:
            continue  # taken by **options: the plugin's to check
        expected = _simple_types(params[option].annotation)
        if expected and not _is_one_of(value, expected):
            raise ConfigurationError(
                f"{sources.get(option, option)}: option {option!r} of the {group} plugin "
                f"{name!r} must be {' or '.join(_TYPE_WORDS[t] for t in expected)}, "
                f"got {value!r}"
            )


#: The annotations whose values are checked where they come in, and their words.
_TYPE_WORDS = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "None": "unset (None)",
}


def _simple_types(annotation: Any) -> list[str]:
    """The type names of an option annotated only with bool, int, float, str and None, in
    that order; empty for any other annotation (its values are the plugin's to check)."""
    if annotation is inspect.Parameter.empty:
        return []
    names = _annotation_names(annotation)
    if not names or not names <= set(_TYPE_WORDS):
        return []
    return [t for t in _TYPE_WORDS if t in names]


def _is_one_of(value: Any, types: list[str]) -> bool:
    """Whether ``value`` is of one of ``types`` (bool is not an int; an int is a number)."""
    if value is None:
        return "None" in types
    if isinstance(value, bool):
        return "bool" in types
    if isinstance(value, int):
        return "int" in types or "float" in types
    if isinstance(value, float):
        return "float" in types
    return isinstance(value, str) and "str" in types


def find_config_file(start: Path | None = None) -> Path | None:
    """The nearest ``sqsw.toml``, or ``pyproject.toml`` with ``[tool.sqsw]``, upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "sqsw.toml"
        if candidate.is_file():
            return candidate
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "sqsw" in _read_toml(candidate).get("tool", {}):
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}") from None


def _file_table(path: Path) -> tuple[dict[str, Any], str]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("sqsw", {})
        return table, f"{path} [tool.sqsw]"
    return data, str(path)


def load_settings(
    config: str | os.PathLike[str] | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    use_file: bool = True,
) -> Settings:
    """Read the config file (given, ``SQSW_CONFIG``, or found upward) and ``SQSW_*`` variables."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    path: Path | None = None
    if config is None and environ.get(CONFIG_ENV):
        config = environ[CONFIG_ENV]
    if config is not None:
        path = Path(config)
        if not path.is_file():
            given = " (from SQSW_CONFIG)" if environ.get(CONFIG_ENV) == str(config) else ""
            raise ConfigurationError(f"config file {path}{given} does not exist")
    elif use_file:
        path = find_config_file(cwd)
    if path is not None:
        table, where = _file_table(path)
        settings.config_file = path
        for key, value in table.items():
            settings.set(key, value, f"{where} key {key!r}")
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        rest = variable[len(ENV_PREFIX) :].lower()
        text = environ[variable]
        source = f"environment variable {variable}"
        if "__" in rest and rest.partition("__")[0] in KEYS:
            key, _, option = rest.partition("__")
            settings.set_option(key, option, _option_value(text), source, text)
        elif rest in KEYS:
            if text != "":  # set but empty: as if unset
                settings.set(rest, text, source)
        elif not _known_variable(variable):
            raise ConfigurationError(_unknown_variable_message(variable))
    return settings


#: Variables the core reads besides ``SQSW_<KEY>``: the config file and ``AWSSession``'s.
CORE_VARIABLES = (CONFIG_ENV, "SQSW_ENDPOINT_URL", "SQSW_REGION", "SQSW_PROFILE")
#: Reserved for sqsw's own test suite and development scripts; sqsw itself never reads them.
DEVELOPMENT_VARIABLES = (
    "SQSW_TEST_*",
    "SQSW_SETUP_*",
    "SQSW_BUILD_*",
    "SQSW_LINT",
    "SQSW_PYTHON",
    "SQSW_FAULT_SEED",
)
#: Entry-point group in which a plugin declares the variables it reads: the entry
#: point's name is the variable (or a pattern such as ``SQSW_ACME_*``); its value
#: is not loaded.
VARIABLES_GROUP = "sqsw.variables"


def plugin_variables() -> list[str]:
    """Variables (and ``PREFIX_*`` patterns) that belong to installed plugins.

    A distribution named ``sqsw-NAME`` that provides sqsw plugins owns
    ``SQSW_NAME_*`` (sqsw-signing: ``SQSW_SIGNING_KEYS``); any plugin may also
    declare variables in the ``sqsw.variables`` entry-point group.
    """
    found = {ep.name for ep in importlib.metadata.entry_points(group=VARIABLES_GROUP)}
    for dist in importlib.metadata.distributions():
        name = str(dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if not name.startswith("sqsw-") or name == "sqsw-core":
            continue
        if any(ep.group.startswith("sqsw.") for ep in dist.entry_points):
            found.add(f"SQSW_{name[len('sqsw-') :].upper().replace('-', '_')}_*")
    return sorted(found)


def _known_variable(variable: str) -> bool:
    upper = variable.upper()
    if upper in CORE_VARIABLES:
        return True
    if any(fnmatch.fnmatchcase(upper, pattern) for pattern in DEVELOPMENT_VARIABLES):
        return True
    return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in plugin_variables())


def _unknown_variable_message(variable: str) -> str:
    """One line: the variable, a close match if any, and what to do."""
    upper = variable.upper()
    key, sep, option = upper.partition("__")
    if sep:  # SQSW_<PLUGIN>__<OPTION>: match the plugin key
        names = [k.upper() for k in PLUGIN_KEYS]
        close = difflib.get_close_matches(key[len(ENV_PREFIX) :], names, n=1)
        suggestion = f"{ENV_PREFIX}{close[0]}__{option}" if close else None
    else:
        exact = [v for v in plugin_variables() if "*" not in v]
        names = [k.upper() for k in KEYS] + [
            v[len(ENV_PREFIX) :] for v in CORE_VARIABLES + tuple(exact)
        ]
        close = difflib.get_close_matches(upper[len(ENV_PREFIX) :], names, n=1)
        suggestion = ENV_PREFIX + close[0] if close else None
    if suggestion is not None:
        return (
            f"environment variable {variable} is not one sqsw reads: did you mean "
            f"{suggestion}? Rename or unset it."
        )
    return (
        f"environment variable {variable} is not one sqsw reads; rename or unset it. sqsw "
        f"reads SQSW_<KEY> for the keys {', '.join(KEYS)}; SQSW_<PLUGIN>__<OPTION> for "
        f"{', '.join(PLUGIN_KEYS)}; {', '.join(CORE_VARIABLES)}; and installed plugins' "
        f"variables ({', '.join(plugin_variables()) or 'none'})"
    )
