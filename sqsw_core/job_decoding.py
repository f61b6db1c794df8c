"""Decoding received jobs: which content types a worker accepts, and with which codec.

A :class:`JobDecoder` belongs to an environment: its codec, the content types
it accepts besides (``accept=``), the codecs found for them, and a cache of
decoded contexts (producers send the same few over and over).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqsw_core.codecs import ALWAYS_ACCEPTED, Codec, MissingCodec, get_codec
from sqsw_core.context import JobContext, is_flat_dict
from sqsw_core.exceptions import ContentTypeRefusedError, DecodeError, PluginError, quote
from sqsw_core.messages import CONTENT_TYPE_ATTR, JOB_CONTEXT_ATTR, Message

_EMPTY: dict[str, Any] = {}
#: Cached in place of a nested context: decode it afresh for every job.
_DECODE_AGAIN: dict[str, Any] = {}
#: Contexts kept decoded, and the longest context text kept.
CONTEXT_CACHE_SIZE = 512
CONTEXT_CACHE_TEXT = 1024


class JobDecoder:
    """Decodes job messages with an environment's codec and accepted content types."""

    def __init__(self, codec: Codec, accept: Iterable[str] = ()) -> None:
        self._accept = frozenset(accept)
        self._contexts: dict[tuple[str, str], dict[str, Any]] = {}
        self.set_codec(codec, self._accept)

    def set_codec(self, codec: Codec, accept: Iterable[str] | None = None) -> None:
        """Use ``codec`` (and accept ``accept`` besides, if given) from now on."""
        if accept is not None:
            self._accept = frozenset(accept)
        self.codec = codec
        # pickle and other codecs that can run code are decoded only when chosen;
        # an exclusive codec (message signing) also turns off the always-accepted
        # JSON, so only its own content type and explicit accept= entries run.
        always = frozenset() if getattr(codec, "exclusive", False) else ALWAYS_ACCEPTED
        self.accepted_content_types = frozenset({*always, codec.content_type, *self._accept})
        # A codec plugin that is not installed (MissingCodec) is looked up again
        # for each message, which then fails with the install advice.
        self._decoders: dict[str, Codec] = (
            {} if isinstance(codec, MissingCodec) else {codec.content_type: codec}
        )
        #: Content types whose codec decodes whole jobs (``JobCodec.decode_job``).
        self._job_decoders: dict[str, Callable[..., tuple[Any, Any]]] = {}
        self._note_job_codec(codec)
        #: ``encode_job`` of the codec, if it has one.
        self.job_encoder: Callable[..., tuple[str, str]] | None = getattr(codec, "encode_job", None)

    def _note_job_codec(self, codec: Codec) -> None:
        decode_job = getattr(codec, "decode_job", None)
        if decode_job is not None:
            self._job_decoders[codec.content_type] = decode_job

    def get_codec(self, spec: str | Codec) -> Codec:
        """A codec by name (content type) or object."""
        if isinstance(spec, str) and spec in self._decoders:
            return self._decoders[spec]
        return get_codec(spec)

    def decoder(self, content_type: str, message: Message) -> Codec:
        """The codec for a received message, if this worker accepts its content type."""
        codec = self._decoders.get(content_type)
        if codec is not None:
            return codec
        if content_type not in self.accepted_content_types:
            advice = ""
            if len(content_type) <= 40:  # advice that quotes a long name is no advice
                advice = (
                    f" Enable it with SQSEnv(codec={content_type!r}) or "
                    f"SQSEnv(accept=[{content_type!r}]) only if you trust every producer of "
                    "this queue."
                )
            raise ContentTypeRefusedError(
                f"message {message.message_id} on queue {message.queue_name!r} (job "
                f"{quote(message.job_name)!r}) has content type {quote(content_type)!r}, which "
                f"this worker does not accept (accepted: "
                f"{', '.join(sorted(self.accepted_content_types))}).{advice}"
            )
        try:
            codec = get_codec(content_type)
        except PluginError as exc:
            # Not quoted: an accepted content type is one this worker was configured
            # with, and the error's last words name the package to install.
            raise DecodeError(
                f"cannot decode message {message.message_id} on queue {message.queue_name!r} "
                f"(job {quote(message.job_name)!r}): {exc}"
            ) from None
        self._decoders[content_type] = codec
        self._note_job_codec(codec)
        return codec

    def decode_job(self, message: Message) -> tuple[dict[str, Any], JobContext]:
        """Decode a job message into its keyword arguments and context.

        Each call returns a context of its own: a job that changes its context
        (nested values included) changes nothing another job sees.
        """
        attributes = message.message_attributes
        content_type = (attributes.get(CONTENT_TYPE_ATTR) or _EMPTY).get("StringValue")
        if content_type is None:
            content_type = self.codec.content_type
        codec = self._decoders.get(content_type) or self.decoder(content_type, message)
        context_text = (attributes.get(JOB_CONTEXT_ATTR) or _EMPTY).get("StringValue")
        context: Any
        if self._job_decoders and content_type in self._job_decoders:
            job_kwargs, context = self._decode_whole(message, content_type, context_text)
        else:
            try:
                job_kwargs = codec.deserialize(message.body)
            except Exception as exc:
                raise _decode_error(message, content_type, exc) from exc
            # The usual case inline (a flat context seen before, a dict): this runs once
            # per job.
            if not context_text:
                context = _EMPTY
            else:
                context = self._contexts.get((content_type, context_text))
                if context is None or context is _DECODE_AGAIN:
                    context = self._context(message, codec, content_type, context_text)
                    if not isinstance(context, dict):
                        _check_decoded(message, job_kwargs, context)
        if type(job_kwargs) is not dict:
            _check_decoded(message, job_kwargs, context)
        return job_kwargs, JobContext(context)

    def _decode_whole(
        self, message: Message, content_type: str, context_text: str | None
    ) -> tuple[Any, Any]:
        """A JobCodec's job arguments and context (a dict, ``{}`` if none): body and
        context checked together."""
        try:
            job_kwargs, context = self._job_decoders[content_type](
                message.job_name, message.body, context_text
            )
        except Exception as exc:
            raise _decode_error(message, content_type, exc) from exc
        if context is None:
            context = {}
        if not isinstance(context, dict):
            _check_decoded(message, job_kwargs, context)
        return job_kwargs, context

    def _context(self, message: Message, codec: Codec, content_type: str, text: str | None) -> Any:
        """A job's context from its attribute's text (decoded once per text if flat)."""
        if not text:
            return {}
        # Producers send the same few contexts over and over: decode each once.
        # Only flat ones are kept: the copy each job gets is then all its own;
        # a nested context is decoded afresh every time.
        key = (content_type, text)
        cached = self._contexts.get(key)
        if cached is not None and cached is not _DECODE_AGAIN:
            return cached
        try:
            context = codec.deserialize(text)
        except Exception as exc:
            raise DecodeError(
                f"bad {JOB_CONTEXT_ATTR} attribute of message {message.message_id} "
                f"on queue {message.queue_name!r} (job {quote(message.job_name)!r}"
                f"): cannot decode it as {quote(content_type)!r}: "
                f"{type(exc).__name__}: {quote(str(exc))}"
            ) from exc
        if cached is None and len(text) <= CONTEXT_CACHE_TEXT:
            if len(self._contexts) >= CONTEXT_CACHE_SIZE:
                self._contexts.clear()
            self._contexts[key] = context if is_flat_dict(context) else _DECODE_AGAIN
        return context


def _check_decoded(message: Message, job_kwargs: Any, context: Any) -> None:
    """Raise :class:`DecodeError` unless arguments and context decoded to dicts."""
    if type(job_kwargs) is not dict:
        raise DecodeError(
            f"the arguments of message {message.message_id} on queue "
            f"{message.queue_name!r} (job {quote(message.job_name)!r}) decoded to "
            f"{type(job_kwargs).__name__}, not a dict of keyword arguments"
        )
    if not isinstance(context, dict):
        raise DecodeError(
            f"bad {JOB_CONTEXT_ATTR} attribute of message {message.message_id} on queue "
            f"{message.queue_name!r} (job {quote(message.job_name)!r}): it decoded to "
            f"{type(context).__name__}, not a dict"
        )


def _decode_error(message: Message, content_type: str, exc: Exception) -> DecodeError:
    return DecodeError(
        f"cannot decode message {message.message_id} on queue {message.queue_name!r} "
        f"(job {quote(message.job_name)!r}) as {quote(content_type)!r}: "
        f"{type(exc).__name__}: {quote(str(exc))}"
    )
