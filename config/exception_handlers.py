"""Domain errors of every app become HTTP here, once, in DRF's error format."""

from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from documents.errors import DocumentBusy, DocumentNotReady
from documents.processing import EmptyDocument, UnsupportedDocument, UrlNotAllowed
from tasks_app.errors import (
    DeadLetterNotRequeueable,
    DeadLetterResolved,
    IdempotencyKeyReused,
    TaskNotCancellable,
)

# Domain error -> HTTP status. Errors that carry the object's ``status`` report it too.
_STATUS_CODES: list[tuple[type[Exception], int]] = [
    (TaskNotCancellable, status.HTTP_409_CONFLICT),
    (DeadLetterResolved, status.HTTP_409_CONFLICT),
    (DeadLetterNotRequeueable, status.HTTP_409_CONFLICT),
    (IdempotencyKeyReused, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (DocumentBusy, status.HTTP_409_CONFLICT),
    (DocumentNotReady, status.HTTP_409_CONFLICT),
    (UnsupportedDocument, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (EmptyDocument, status.HTTP_400_BAD_REQUEST),
]


class _DomainError(exceptions.APIException):
    def __init__(self, detail: str, status_code: int):
        super().__init__(detail)
        self.status_code = status_code


def domain_exception_handler(exc, context):
    if isinstance(exc, UrlNotAllowed):
        return exception_handler(exceptions.ValidationError({"url": [str(exc)]}), context)
    for error_class, status_code in _STATUS_CODES:
        if isinstance(exc, error_class):
            response = exception_handler(_DomainError(str(exc), status_code), context)
            if hasattr(exc, "status"):
                response.data["status"] = exc.status
            return response
    return exception_handler(exc, context)
