"""Paginated, filtered list responses shared by the apps' list endpoints."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class CheckedCursorPagination(CursorPagination):
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
    page_size_query_param = "page_size"
    max_page_size = 200


def filtered_page_response(
    *, request, view, queryset: QuerySet, filterset_class, serializer_class
) -> Response:
    """One page of ``queryset`` narrowed by the query string; bad filters are a 400."""
    filtered = filterset_class(request.query_params, queryset=queryset, request=request)
    if not filtered.is_valid():
        raise serializers.ValidationError(filtered.errors)
    paginator = NewestFirstPagination()
    page = paginator.paginate_queryset(filtered.qs, request, view=view)
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)
