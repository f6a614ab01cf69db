"""Domain errors of every app become HTTP here, once, in DRF's error format."""

from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler

from api.errors import DomainError


class _DomainErrorResponse(exceptions.APIException):
    def __init__(self, detail: str, status_code: int):
        super().__init__(detail)
        self.status_code = status_code


def domain_exception_handler(exc, context):
    if not isinstance(exc, DomainError):
        return exception_handler(exc, context)
    if exc.field is not None:
        return exception_handler(exceptions.ValidationError({exc.field: [str(exc)]}), context)
    response = exception_handler(_DomainErrorResponse(str(exc), exc.http_status), context)
    for extra in ("status", "limit"):
        if hasattr(exc, extra):
            response.data[extra] = getattr(exc, extra)
    return response


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
