"""The codec interface: how job arguments and contexts become message text.

Codecs are plugins (group ``sqsw.codecs``); the name a codec is registered
under is also the ``ContentType`` message attribute it writes, so a worker
finds the codec of any message it receives by that attribute.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sqsw_core import plugins
from sqsw_core.exceptions import PluginError

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


class JobCodec(Codec, Protocol):
    """A codec that encodes a job's arguments and context together (optional).

    When a codec has these methods, sqsw uses them instead of two
    :meth:`Codec.serialize` / :meth:`Codec.deserialize` calls, so the codec can
    bind the parts of a message to each other and to its ``JobName``
    attribute (message signing does).
    """

    def encode_job(
        self, job_name: str, job_kwargs: dict[str, Any], context: dict[str, Any]
    ) -> tuple[str, str]:
        """The message body and the ``JobContext`` attribute text of one job."""
        ...

    def decode_job(
        self, job_name: str | None, body: str, context_text: str | None
    ) -> tuple[Any, Any]:
        """Job arguments and context (``None``: none) of a received message; raise on bad input."""
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


class MissingCodec:
    """Stands in for a codec plugin that is not installed, until a job needs it.

    ``SQSEnv()`` works with the core alone (queues can be listed, created and
    purged); encoding or decoding a job with this codec raises the
    :class:`~sqsw_core.exceptions.PluginError` that names the package to install.
    """

    def __init__(self, error: PluginError) -> None:
        self.error = error
        self.content_type = error.name

    def serialize(self, obj: Any) -> str:
        raise self.error

    def deserialize(self, text: str) -> Any:
        raise self.error

    def __repr__(self) -> str:
        return f"<MissingCodec {self.content_type!r}: {self.error.package} is not installed>"


def codec_or_missing(spec: str | Codec) -> Codec:
    """:func:`get_codec`, but the default codec is a :class:`MissingCodec` if not installed.

    The default (JSON) comes with sqsw-json, not the core: an environment that
    only manages queues needs no codec. A codec chosen by name that is not
    installed, an unknown name or an object that is no codec is refused at once.
    """
    try:
        return get_codec(spec)
    except PluginError as exc:
        if spec == DEFAULT_CODEC and exc.package is not None and spec not in exc.installed:
            return MissingCodec(exc)
        raise
