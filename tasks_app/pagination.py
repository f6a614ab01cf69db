"""Paginated, filtered list responses shared by the apps' list endpoints."""

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class NewestFirstPagination(CursorPagination):
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
