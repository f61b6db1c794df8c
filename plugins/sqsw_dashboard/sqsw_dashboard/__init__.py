"""sqsw-dashboard: a web dashboard for sqsw queues, dead letters and redrive.

``sqsw dashboard`` serves it (the command this plugin adds through the
``sqsw.commands`` entry-point group). To embed it in your own ASGI server::

    from sqsw_core import SQSEnv
    from sqsw_dashboard import Dashboard, DashboardOptions, create_app

    app = create_app(Dashboard(SQSEnv(), DashboardOptions(read_only=True)))

The names are imported on first use, so ``sqsw --help`` and ``sqsw plugins``
do not pay for the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqsw_dashboard.app import create_app
    from sqsw_dashboard.auth import Credentials, load_credentials
    from sqsw_dashboard.state import Dashboard, DashboardOptions

__version__ = "0.1.0"

__all__ = ["Credentials", "Dashboard", "DashboardOptions", "create_app", "load_credentials"]

_MODULES = {
    "create_app": "sqsw_dashboard.app",
    "Credentials": "sqsw_dashboard.auth",
    "load_credentials": "sqsw_dashboard.auth",
    "Dashboard": "sqsw_dashboard.state",
    "DashboardOptions": "sqsw_dashboard.state",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'sqsw_dashboard' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
