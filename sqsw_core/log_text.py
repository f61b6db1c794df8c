"""Values from messages as they appear in log lines: cut to a readable length.

A job name, attribute or error text comes from whoever sent the message; a
producer's bug (or an attacker) can make it megabytes long. Log lines show at
most :data:`MAX_LOGGED_CHARS` characters of it and say how much was cut.
"""

from __future__ import annotations

#: The longest value from a message that a log line shows whole.
MAX_LOGGED_CHARS = 200


def shorten(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters with a note of the rest."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
