"""The codec interface: how job arguments and contexts become message text.

Codecs are plugins (group ``sqsw.codecs``); the name a codec is registered
under is also the ``ContentType`` message attribute it writes, so a worker
finds the codec of any message it receives by that attribute.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sqsw_core import plugins

#: The codec a new environment encodes with when none is chosen.
DEFAULT_CODEC = "json"

#: Content types a worker always executes, whatever its own codec. Codecs
#: that can run code on decode (pickle) must be enabled by name or object.
ALWAYS_ACCEPTED = frozenset({"json"})


@runtime_checkable
class Codec(Protocol):
    """Serializes job arguments and contexts to SQS message text and back."""

    #: The ``ContentType`` message attribute written with every message.
    #: A codec may also set ``exclusive = True``: a worker using it then accepts
    #: only its own content type (and ``accept=``), not the always-accepted JSON.
    content_type: str

    def serialize(self, obj: Any) -> str:
        """Encode ``obj`` (a dict of job arguments or a context) as text."""
        ...

    def deserialize(self, text: str) -> Any:
        """Decode text written by :meth:`serialize`; raise on bad input."""
        ...


def _is_codec(obj: Any) -> bool:
    return (
        isinstance(getattr(obj, "content_type", None), str)
        and callable(getattr(obj, "serialize", None))
        and callable(getattr(obj, "deserialize", None))
    )


def get_codec(spec: str | Codec) -> Codec:
    """Return the codec for a name (its content type) or check a codec object."""
    codec: Codec = plugins.resolve(
        plugins.CODECS, spec, _is_codec, what="a codec (content_type, serialize, deserialize)"
    )
    return codec
