"""Signed message bodies for sqsw: an HMAC-SHA256 codec wrapping another codec.

``SigningCodec`` (registered as codec ``signed``) encodes with an inner codec
(``json`` by default) and wraps the text in a JSON envelope::

    {"v":2,"kid":"2024-06","ct":"json","sig":"<base64url HMAC-SHA256>","body":"<inner text>"}

A job's arguments (the message body) and its context (the ``JobContext``
attribute) are each such an envelope. The MAC of the arguments covers the
envelope version, the key id, the inner content type, the part (arguments),
the ``JobName`` attribute and the inner text; the context's MAC covers the
same fields for the context part plus the arguments' signature. So a signed
body cannot be replayed under another job name, nor paired with another
message's context, nor relabelled; every field is length-prefixed so no two
inputs share a byte string. Not covered: freshness (a signed message may be
sent again; SQS itself redelivers messages, so there is no expiry), and
anyone holding a key can sign any job.

Verification uses :func:`hmac.compare_digest`. Several keys may be accepted
at once (rotation): messages are signed with one key (``key_id``) and
verified with any key whose id is in the envelope. Keys come from the
options or from ``SQSW_SIGNING_KEYS`` (``id:secret,id:secret``; the first
signs unless ``key_id`` names another). Secrets never appear in a log line,
an error message or a ``repr``.

The content type written is ``signed``: a worker must be configured with
this codec (``SQSEnv(codec="signed")`` or ``accept=["signed"]``) to read these
messages, and a plain sqs-workers consumer cannot read them at all.
``serialize``/``deserialize`` sign one text alone (part ``text``, no job
name); workers refuse such envelopes as job messages.

Modules: ``codec`` (:class:`SigningCodec`), ``envelope`` (the envelope format,
its MAC, :class:`SignatureError`), ``keys`` (where keys come from).
"""

from __future__ import annotations

from sqsw_signing.codec import SigningCodec

# ``X as X``: public before the split though not in ``__all__``, still exported from here.
from sqsw_signing.envelope import PART_ARGS as PART_ARGS
from sqsw_signing.envelope import PART_CONTEXT as PART_CONTEXT
from sqsw_signing.envelope import PART_TEXT as PART_TEXT
from sqsw_signing.envelope import VERSION as VERSION
from sqsw_signing.envelope import SignatureError
from sqsw_signing.keys import ENV_VAR, MIN_KEY_BYTES, parse_keys

__all__ = ["ENV_VAR", "MIN_KEY_BYTES", "SignatureError", "SigningCodec", "parse_keys"]
