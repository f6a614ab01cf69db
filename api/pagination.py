"""Paginated, filtered list responses shared by the apps' list endpoints."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class StrictPageSize:
    """``?page_size=`` as a whole number from 1 up (capped at ``max_page_size``), else 400.

    DRF quietly uses the default page size for ``page_size=abc``; a client that made a
    mistake should hear of it. The schema says the same (``minimum: 1``).
    """

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:  # not a number, or more digits than Python converts
            size = 0
        if size < 1:
            raise serializers.ValidationError(
                {self.page_size_query_param: ["Give a whole number from 1 up."]}
            )
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page, from 1 up; more than {self.max_page_size} gives "
                    f"{self.max_page_size}."
                )
        return parameters


class CheckedCursorPagination(StrictPageSize, CursorPagination):
    """DRF's cursor pages, with the cursor's position checked before it reaches a query.

    A cursor is only base64 the client can rewrite: ``p=garbage`` would otherwise fail
    inside the query (a datetime that does not parse, an integer out of the column's
    range) as a 500. A position the ordering field refuses is an invalid cursor, 404,
    the answer DRF gives to a cursor it cannot decode at all.
    """

    def paginate_queryset(self, queryset, request, view=None):
        cursor = self.decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            order_field = self.get_ordering(request, queryset, view)[0].lstrip("-")
            try:
                queryset.model._meta.get_field(order_field).clean(cursor.position, None)
            except ValidationError:
                raise NotFound(self.invalid_cursor_message) from None
        return super().paginate_queryset(queryset, request, view)


class NewestFirstPagination(CheckedCursorPagination):
    """Cursor pages, newest first: stable while rows are added, fast at any depth."""

    ordering = ("-created_at", "-id")
    max_page_size = 200


def filtered_page_response(*, request, view, queryset: QuerySet, serializer_class) -> Response:
    """One page of ``queryset`` narrowed by the query string; bad filters are a 400.

    The view names its ``filterset_class`` and ``pagination_class`` the way DRF's generic
    views do, so that the OpenAPI schema lists the same filters and pages as apply here.
    """
    filtered = view.filterset_class(request.query_params, queryset=queryset, request=request)
    if not filtered.is_valid():
        raise serializers.ValidationError(filtered.errors)
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(filtered.qs, request, view=view)
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)
