"""The OpenAPI schema (drf-spectacular): the error answers and the API-key scheme it
cannot see by itself, so that a client generated from ``/api/schema/`` knows them."""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_serializer
from drf_spectacular.utils import PolymorphicProxySerializer as PolymorphicProxy
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, AllowAny


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """DRF's error shape (config/exception_handlers.py): ``{"detail": "…"}``, or for invalid
    input ``{"field": ["message", …], …}``, nested like the input itself."""

    detail = serializers.CharField(required=False, help_text="What is wrong.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus each operation's error answers, from what the view is:
    authenticated (401, 403), taking a body (400, 413, 415), filters or parameters (400),
    addressing one object or a page of a cursor (404), throttled (429). Answers that only
    the view knows (409, 422, 503) it declares itself with ``extend_schema``."""

    def _get_response_bodies(self, direction="response"):
        # Here, not in get_response_serializers: extend_schema's subclass replaces that one.
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_answers():
            if str(code) not in responses:
                error = OpenApiResponse(ErrorSerializer, description=description)
                responses[str(code)] = self._get_response_for_code(
                    error, str(code), direction=direction
                )
        return responses

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is not None and isinstance(self.get_request_serializer(), PolymorphicProxy):
            # drf-spectacular cannot look into the variants; each of ours needs its type.
            body["required"] = True
        return body

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        blank_refused = (
            isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
        )
        if direction == "request" and blank_refused and "pattern" not in schema:
            # DRF trims the value before it refuses a blank one: "  " is as wrong as "".
            schema["pattern"] = r"\S"
        return schema

    def _error_answers(self) -> list[tuple[int, str]]:
        answers = []
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        if has_body or self._has_query_parameters():
            answers.append((400, "The input is invalid; the body says which part and why."))
        if not all(issubclass(permission, AllowAny) for permission in self.view.permission_classes):
            answers.append((401, "No credentials, or credentials that are invalid or revoked."))
            answers.append((403, "These credentials may not do this (staff only, or CSRF)."))
        if "{" in self.path or self._is_paginated():
            answers.append((404, "No such object visible to you, or an invalid page or cursor."))
        if has_body:
            answers.append((413, "The request body is larger than the limit."))
            answers.append((415, "The body is not in a media type this operation takes."))
        if self.view.throttle_classes and self.method not in SAFE_METHODS:
            answers.append((429, "Too many requests; the Retry-After header says when to retry."))
        return answers

    def _is_paginated(self) -> bool:
        return self._is_list_view() and self._get_paginator() is not None

    def _has_query_parameters(self) -> bool:
        # Pagination's own parameters are not among them: DRF falls back to the default
        # page size, and answers a bad cursor or page with 404.
        if self.get_filter_backends():
            return True
        # An OpenApiParameter says where it goes; a serializer given as parameters is a query.
        return any(
            getattr(parameter, "location", "query") == "query"
            for parameter in self.get_override_parameters()
        )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``X-API-Key: <key>`` (tasks_app/authentication.py)."""

    target_class = "tasks_app.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}
