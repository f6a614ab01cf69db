"""Domain errors of every app become HTTP here, once, in DRF's error format."""

from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from documents.errors import DocumentBusy, DocumentNotReady
from documents.processing import EmptyDocument, UnsupportedDocument, UrlNotAllowed
from tasks_app.errors import (
    ActiveTaskLimitReached,
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
    (ActiveTaskLimitReached, status.HTTP_429_TOO_MANY_REQUESTS),
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
            if hasattr(exc, "limit"):
                response.data["limit"] = exc.limit
            return response
    return exception_handler(exc, context)


# --- Django's own error responses -----------------------------------------------------------
# An unknown URL, a refused request or a crash never reaches DRF: Django answers with its
# HTML pages. Under /api/ clients expect JSON, so these answer in DRF's format there and
# leave the admin's and the docs' pages as they are (config/urls.py names them).

API_PATH_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path_info.startswith(API_PATH_PREFIX)


def _json_error(error_class: type[exceptions.APIException]) -> JsonResponse:
    return JsonResponse({"detail": str(error_class.default_detail)}, status=error_class.status_code)


def api_bad_request(request, exception):
    if _is_api(request):
        return _json_error(exceptions.ParseError)
    return defaults.bad_request(request, exception)


def api_permission_denied(request, exception):
    if _is_api(request):
        return _json_error(exceptions.PermissionDenied)
    return defaults.permission_denied(request, exception)


def api_page_not_found(request, exception):
    if _is_api(request):
        return _json_error(exceptions.NotFound)
    return defaults.page_not_found(request, exception)


def api_server_error(request):
    if _is_api(request):
        return _json_error(exceptions.APIException)
    return defaults.server_error(request)
