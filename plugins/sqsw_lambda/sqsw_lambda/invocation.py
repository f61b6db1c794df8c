"""The Lambda invocation being handled: its context object, for jobs that ask for it."""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["lambda_context"]

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("sqsw_lambda_context", default=None)


def lambda_context() -> Any:
    """The Lambda context object of the invocation running the current job.

    ``aws_request_id``, ``function_name``, ``get_remaining_time_in_millis()``...
    as Lambda's Python runtime documents them; ``None`` outside a Lambda
    invocation (a job run by ``sqsw run``, say), so a job can run on both.
    """
    return _current.get()


def set_lambda_context(context: Any) -> contextvars.Token[Any]:
    """Make ``context`` the current invocation's (returns the token to reset it)."""
    return _current.set(context)


def reset_lambda_context(token: contextvars.Token[Any]) -> None:
    _current.reset(token)
