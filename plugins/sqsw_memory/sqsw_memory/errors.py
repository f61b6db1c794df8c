"""Errors exactly as boto3 raises them for SQS (JSON protocol, ``awsQueryCompatible``).

botocore picks the exception class from the error's shape name and reports the
legacy query code in ``response["Error"]["Code"]``: a missing queue raises
``client.exceptions.QueueDoesNotExist`` whose code is
``AWS.SimpleQueueService.NonExistentQueue``. Errors SQS does not model
(``InvalidParameterValue``, ``MissingParameter``) raise a plain ``ClientError``.
The classes come from botocore's own exception factory for the SQS model, built
once and cached, so ``except client.exceptions.X`` works as against AWS.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.errorfactory import ClientExceptionsFactory
from botocore.exceptions import ClientError, ParamValidationError
from botocore.model import ServiceModel
from botocore.session import get_session
from botocore.validate import ParamValidator

__all__ = [
    "SQSError",
    "client_exceptions",
    "service_model",
    "validate_params",
]

#: shape name -> (legacy code shown in ``Error.Code``, HTTP status)
_CODES: dict[str, tuple[str, int]] = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "TooManyEntriesInBatchRequest": (
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        400,
    ),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
    "OverLimit": ("OverLimit", 403),
    # not modelled by SQS: botocore raises ClientError with these codes
    "InvalidParameterValueException": ("InvalidParameterValue", 400),
    "MissingRequiredParameterException": ("MissingParameter", 400),
}

#: short names used in this package for the unmodelled errors
_ALIASES = {
    "InvalidParameterValue": "InvalidParameterValueException",
    "MissingParameter": "MissingRequiredParameterException",
}

_lock = threading.Lock()
_models: dict[str, ServiceModel] = {}
_exceptions: Any = None
_validator = ParamValidator()


def service_model(service: str = "sqs") -> ServiceModel:
    """botocore's model of ``service`` (loaded once)."""
    model = _models.get(service)
    if model is None:
        with _lock:
            model = _models.get(service)
            if model is None:
                model = _models[service] = get_session().get_service_model(service)
    return model


def client_exceptions() -> Any:
    """The ``client.exceptions`` object of a real botocore SQS client (built once)."""
    global _exceptions
    if _exceptions is None:
        model = service_model()
        with _lock:
            if _exceptions is None:
                _exceptions = ClientExceptionsFactory().create_client_exceptions(model)
    return _exceptions


class SQSError(Exception):
    """An SQS error before it is bound to an operation (see :func:`raise_error`).

    ``name`` is the error's shape name (``QueueDoesNotExist``) or one of the
    unmodelled codes (``InvalidParameterValue``, ``MissingParameter``).
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = _ALIASES.get(name, name)
        self.message = message

    @property
    def code(self) -> str:
        """The code botocore shows in ``Error.Code`` (and in batch ``Failed`` entries)."""
        return _CODES.get(self.name, (self.name, 400))[0]

    def to_client_error(self, operation: str, request_id: str) -> ClientError:
        """The botocore exception a real client raises for this error."""
        code, status = _CODES.get(self.name, (self.name, 400))
        response: Any = {
            "Error": {
                "Code": code,
                "Message": self.message,
                "QueryErrorCode": self.name,
                "Type": "Sender",
            },
            "ResponseMetadata": {
                "RequestId": request_id,
                "HTTPStatusCode": status,
                "HTTPHeaders": {
                    "x-amzn-requestid": request_id,
                    "x-amzn-query-error": f"{code};Sender",
                    "content-type": "application/x-amz-json-1.0",
                },
                "RetryAttempts": 0,
            },
        }
        cls: type[ClientError] = client_exceptions().from_code(self.name)
        return cls(response, operation)


def validate_params(operation: str, params: dict[str, Any], service: str = "sqs") -> None:
    """Validate ``params`` as botocore does before sending; raise ``ParamValidationError``."""
    shape = service_model(service).operation_model(operation).input_shape
    report = _validator.validate(params, shape)
    if report.has_errors():
        raise ParamValidationError(report=report.generate_report())
