"""sqsw-dashboard: a web dashboard for sqsw queues, dead letters and redrive.

``sqsw dashboard`` serves it (the command this plugin adds through the
``sqsw.commands`` entry-point group). To embed it in your own ASGI server::

    from sqsw_core import SQSEnv
    from sqsw_dashboard import Dashboard, DashboardOptions, create_app

    app = create_app(Dashboard(SQSEnv(), DashboardOptions(read_only=True)))
"""

from sqsw_dashboard.app import create_app
from sqsw_dashboard.auth import Credentials, load_credentials
from sqsw_dashboard.state import Dashboard, DashboardOptions

__version__ = "0.1.0"

__all__ = ["Credentials", "Dashboard", "DashboardOptions", "create_app", "load_credentials"]
