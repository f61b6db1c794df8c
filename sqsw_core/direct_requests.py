"""The hot SQS requests sent without botocore's per-call pipeline.

A worker spends most of its client CPU in three requests: ReceiveMessage,
DeleteMessageBatch and ChangeMessageVisibilityBatch. botocore builds each one
through a general pipeline (events, endpoint rules, serializer, header
classes, response parser walking the output shape) that costs more than the
HTTP exchange itself. For a client sqsw made itself, :class:`DirectRequests`
sends these three with the pieces of botocore that matter and nothing else:

- the first call of each operation goes through the client as usual, and
  what botocore sent (URL, headers, signing context) is kept as that
  operation's template: endpoint rules, user agent, query-mode header and
  proxies stay botocore's own decisions;
- later calls copy the template, put the JSON body in (SQS's JSON protocol;
  these requests carry only strings, numbers and lists), are signed with
  AWS Signature Version 4 over the client's credentials (refreshed ones
  included) by :mod:`sqsw_core.request_signing` (the client's own request
  signer for any other signing setup), and go out on the client's own HTTP
  session (same pool, TLS, timeouts, proxies, and the same connection
  errors);
- a 2xx response is read as JSON, binary attribute values decoded as
  botocore does; any other status goes to botocore's own parser and raises
  the exception class the client would raise (``QueueDoesNotExist``...).

Retries stay where they are: SQSApi's retry layer (botocore's are off in the
clients sqsw makes). Anything this module cannot do the same way (a botocore
without these parts, an instrumented client) leaves the client in charge.
"""

from __future__ import annotations

import base64
import json
import os
import types
import uuid
from collections.abc import Callable
from typing import Any

from sqsw_core.request_signing import SigV4Signer, host_header, signable

#: boto3 method names sent directly, and their API names.
DIRECT_OPERATIONS = {
    "receive_message": "ReceiveMessage",
    "delete_message_batch": "DeleteMessageBatch",
    "change_message_visibility_batch": "ChangeMessageVisibilityBatch",
}

#: Headers a template must not carry into the next request: the signer and
#: the HTTP layer set them again for each one.
_PER_REQUEST = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "content-length",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
    }
)
#: Headers botocore adds after signing (unsigned): sent the same way.
_AFTER_SIGNING = ("amz-sdk-request",)


#: Signing context entries of one request only (the signer sets its timestamp).
_PER_REQUEST_CONTEXT = frozenset({"timestamp", "retries"})


class _Template:
    """What botocore sent for one operation: URL, fixed headers, signing context."""

    __slots__ = ("after_signing", "context", "headers", "host", "method", "signs_here", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        after_signing: dict[str, str],
        context: Any,
        signs_here: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.after_signing = after_signing
        self.context = context
        #: Signed by request_signing.SigV4Signer (else by the client's request signer).
        self.signs_here = signs_here
        self.host = host_header(url)


def usable(client: Any) -> bool:
    """Whether ``client`` is a botocore client this module can send for: the parts it
    uses exist, and nothing wraps the client's calls (instrumentation would be skipped)."""
    import botocore
    from botocore.client import BaseClient

    if not isinstance(client, BaseClient) or not _botocore_own(BaseClient, botocore.__file__):
        return False
    endpoint = getattr(client, "_endpoint", None)
    signer = getattr(client, "_request_signer", None)
    meta = client.meta
    return (
        endpoint is not None
        and hasattr(endpoint, "http_session")
        and callable(getattr(signer, "sign", None))
        and meta.service_model.resolved_protocol == "json"
    )


def _botocore_own(client_class: type, botocore_init: str) -> bool:
    """Whether the client class's call method is botocore's own, not a wrapper put
    there by instrumentation (OpenTelemetry, X-Ray, Datadog wrap it): calls must then
    go through it, so that they are traced."""
    method = client_class.__dict__.get("_make_api_call")
    code = getattr(method, "__code__", None)
    return (
        type(method) is types.FunctionType
        and code is not None
        and code.co_filename.startswith(os.path.dirname(botocore_init))
    )


class DirectRequests:
    """Sends DIRECT_OPERATIONS for one botocore client (see the module's text)."""

    def __init__(self, client: Any) -> None:
        from botocore.awsrequest import AWSPreparedRequest, AWSRequest
        from botocore.client import BaseClient
        from botocore.parsers import create_parser

        self.client = client
        self._client_class = BaseClient
        self._plain = BaseClient.__dict__["_make_api_call"]  # checked by usable()
        self._request_class = AWSRequest
        self._prepared_class = AWSPreparedRequest
        self._http = client._endpoint.http_session
        self._signer = client._request_signer
        self._sigv4 = SigV4Signer(self._signer)
        self._service_model = client.meta.service_model
        self._error_parser = create_parser(self._service_model.resolved_protocol)
        self._events = client.meta.events
        self._templates: dict[str, _Template] = {}
        service_id = self._service_model.service_id.hyphenize()
        self._operation_models = {
            api_name: self._service_model.operation_model(api_name)
            for api_name in DIRECT_OPERATIONS.values()
        }
        self._event_names = {
            api_name: f"{service_id}.{api_name}" for api_name in DIRECT_OPERATIONS.values()
        }
        for api_name in DIRECT_OPERATIONS.values():
            client.meta.events.register(
                f"before-send.{service_id}.{api_name}",
                self._keeper(api_name),
                unique_id=f"sqsw-direct-requests-{id(self)}-{api_name}",
            )

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call boto3 method ``operation``: directly once its template is known."""
        api_name = DIRECT_OPERATIONS[operation]
        template = self._templates.get(api_name)
        if template is None or self._client_class.__dict__["_make_api_call"] is not self._plain:
            # botocore sends it (and keep() keeps what it sent), or the client's calls were
            # instrumented since: they must all go through the instrumentation.
            response: dict[str, Any] = getattr(self.client, operation)(**params)
            return response
        return self._send(api_name, template, params)

    def _keeper(self, api_name: str) -> Callable[..., None]:
        def keep(request: Any, **_: Any) -> None:
            if api_name not in self._templates:
                sent = {
                    k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
                }
                headers = {k: v for k, v in sent.items() if k.lower() not in _PER_REQUEST}
                after = {k: v for k, v in sent.items() if k.lower() in _AFTER_SIGNING}
                context = {
                    k: v
                    for k, v in (getattr(request, "context", None) or {}).items()
                    if k not in _PER_REQUEST_CONTEXT
                }
                signs_here = request.method == "POST" and signable(
                    request.url, context, self._signer
                )
                self._templates[api_name] = _Template(
                    request.method, request.url, headers, after, context, signs_here
                )

        return keep

    def _send(self, api_name: str, template: _Template, params: dict[str, Any]) -> dict[str, Any]:
        """Send as botocore's client would, without its per-call pipeline: the client's
        ``before-call`` handlers may answer in SQS's place and its ``after-call`` handlers
        see the response, as with every botocore call."""
        model = self._operation_models[api_name]
        context = dict(template.context)
        headers = dict(template.headers)
        body = json.dumps(params).encode()
        request_dict = {
            "url_path": "/",
            "query_string": "",
            "method": template.method,
            "headers": headers,
            "body": body,
            "url": template.url,
            "context": context,
        }
        events = self._events
        event = self._event_names[api_name]
        _, answered = events.emit_until_response(
            f"before-call.{event}",
            model=model,
            params=request_dict,
            request_signer=self._signer,
            context=context,
        )
        parsed: dict[str, Any]
        if answered is not None:
            http, parsed = answered
        else:
            http = self._http.send(self._prepared(api_name, template, headers, body, context))
            parsed = self._parse(http, model)
        events.emit(
            f"after-call.{event}", http_response=http, parsed=parsed, model=model, context=context
        )
        if http.status_code >= 300:
            # As botocore's client: SQS's query-compatible errors name their modeled
            # exception in QueryErrorCode, which an after-call handler puts in the context.
            code = context.get("error_code_override") or parsed.get("Error", {}).get("Code")
            error_class: type[Exception] = self.client.exceptions.from_code(code)
            raise error_class(parsed, api_name)
        return parsed

    def _prepared(
        self,
        api_name: str,
        template: _Template,
        headers: dict[str, str],
        body: bytes,
        context: dict[str, Any],
    ) -> Any:
        """The signed request, ready for the HTTP session."""
        if template.signs_here:
            sent = dict(headers)
            self._sigv4.sign(template.host, sent, body)
            sent["Content-Length"] = str(len(body))
        else:
            request = self._request_class(
                method=template.method, url=template.url, headers=headers, data=body
            )
            request.context = context
            self._signer.sign(api_name, request)
            sent = request.headers
        # As botocore's endpoint: an id per request and the attempt, after signing.
        sent["amz-sdk-invocation-id"] = str(uuid.uuid4())
        sent.update(template.after_signing)
        if template.signs_here:
            return self._prepared_class(template.method, template.url, sent, body, False, context)
        return request.prepare()

    def _parse(self, http: Any, model: Any) -> dict[str, Any]:
        """The parsed response: JSON for a success, botocore's parser for an error."""
        if http.status_code >= 300:
            from botocore.endpoint import convert_to_response_dict

            error: dict[str, Any] = self._error_parser.parse(
                convert_to_response_dict(http, model), model.output_shape
            )
            return error
        content = http.content
        try:
            parsed: dict[str, Any] = json.loads(content) if content else {}
        except ValueError:  # as botocore's parser: a body that is not JSON answers nothing
            return {}
        if model.name == "ReceiveMessage":
            for message in parsed.get("Messages", ()):
                _decode_binary_attributes(message)
        return parsed


def _decode_binary_attributes(message: dict[str, Any]) -> None:
    """Binary message attribute values as bytes (JSON carries them base64-encoded)."""
    for value in (message.get("MessageAttributes") or {}).values():
        if "BinaryValue" in value:
            value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
        if value.get("BinaryListValues"):
            value["BinaryListValues"] = [base64.b64decode(v) for v in value["BinaryListValues"]]
