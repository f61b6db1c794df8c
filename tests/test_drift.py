"""Hand-kept lists against what they describe, so that a new plugin cannot be forgotten.

The core's provider table (``plugins.KNOWN_PROVIDERS``) against every shipped
``pyproject.toml``; ruff's first-party packages and mypy's search path against the
packages under ``plugins/``; the names the READMEs import against the code.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path
from typing import Any

from sqsw_core import plugins
from sqsw_core.cli import KNOWN_COMMANDS
from sqsw_core.cli.common import COMMANDS_GROUP

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIRS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))
PROJECTS = [REPO, *PLUGIN_DIRS]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "plugins").glob("*/README.md")),
    *sorted((REPO / "docs").glob("*.md")),
]


def _pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text())


def _plugin_packages() -> set[str]:
    """The import packages under ``plugins/`` (each plugin's ``tool.setuptools.packages``)."""
    found: set[str] = set()
    for project in PLUGIN_DIRS:
        declared = _pyproject(project)["tool"]["setuptools"]["packages"]
        found |= {name.split(".")[0] for name in declared}
        found |= {p.parent.name for p in project.glob("*/__init__.py")}
    return found


def _first_party() -> set[str]:
    return {"sqsw_core", *_plugin_packages()}


def test_provider_table_matches_the_entry_points_every_distribution_registers() -> None:
    registered: set[tuple[str, str, str]] = set()
    for project in PROJECTS:
        meta = _pyproject(project)["project"]
        for group, entries in meta.get("entry-points", {}).items():
            if group.startswith("sqsw."):  # not pytest11 and the like
                registered |= {(group, name, meta["name"]) for name in entries}
    table = {
        (group, name, dist)
        for group, names in plugins.KNOWN_PROVIDERS.items()
        for name, dist in names.items()
    }
    missing = sorted(registered - table)
    extra = sorted(table - registered)
    assert not missing and not extra, (
        "plugins.KNOWN_PROVIDERS does not match the pyproject.toml entry points.\n"
        f"Registered but missing from the table (group, name, distribution): {missing}\n"
        f"In the table but registered by no such distribution: {extra}"
    )


def test_every_provider_group_is_a_known_group() -> None:
    known = {*plugins.GROUPS, plugins.COMMANDS}
    unknown = sorted(set(plugins.KNOWN_PROVIDERS) - known)
    assert not unknown, f"KNOWN_PROVIDERS has groups plugins.GROUPS does not describe: {unknown}"


def test_the_cli_names_the_same_command_providers() -> None:
    assert COMMANDS_GROUP == plugins.COMMANDS
    assert plugins.KNOWN_PROVIDERS[plugins.COMMANDS] == KNOWN_COMMANDS, (
        "sqsw_core.cli.KNOWN_COMMANDS and plugins.KNOWN_PROVIDERS[plugins.COMMANDS] differ"
    )


def test_ruff_known_first_party_lists_every_plugin_package() -> None:
    isort = _pyproject(REPO)["tool"]["ruff"]["lint"]["isort"]
    listed = set(isort["known-first-party"])
    missing = sorted(_first_party() - listed)
    extra = sorted(listed - _first_party())
    assert not missing and not extra, (
        "[tool.ruff.lint.isort] known-first-party in pyproject.toml is out of date: "
        f"missing {missing}, not a package here {extra}"
    )


def test_mypy_path_lists_every_plugin_directory() -> None:
    mypy_path = _pyproject(REPO)["tool"]["mypy"]["mypy_path"].split(":")
    missing = sorted(
        str(p.relative_to(REPO)) for p in PLUGIN_DIRS if str(p.relative_to(REPO)) not in mypy_path
    )
    assert not missing, f"[tool.mypy] mypy_path in pyproject.toml lacks {missing}"


def _imports(code: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` per ``from module import name``; ``(module, None)`` per ``import``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _import_error(module: str, name: str | None) -> str | None:
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        return f"import {module}: {exc}"
    if name is None or name == "*" or hasattr(imported, name):
        return None
    try:  # ``from package import submodule``
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"from {module} import {name}: {module} has no {name!r}"
    return None


def test_every_sqsw_name_the_docs_import_exists() -> None:
    """Each sqsw module or name imported in a python block of a README or doc page.

    Third-party imports (opentelemetry, boto3) and the placeholder ``myapp`` are not
    sqsw's to promise; only first-party packages are checked.
    """
    first_party = _first_party()
    failures: list[str] = []
    checked = 0
    for doc in DOCS:
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(), re.DOTALL):
            for module, name in _imports(block):
                if module.split(".")[0] not in first_party:
                    continue
                checked += 1
                error = _import_error(module, name)
                if error is not None:
                    failures.append(f"{doc.relative_to(REPO)}: {error}")
    assert checked > 10, f"only {checked} sqsw imports found in {DOCS}: is the parsing broken?"
    assert not failures, "names the docs import that do not exist:\n" + "\n".join(failures)
