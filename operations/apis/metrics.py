"""Metrics over HTTP: a JSON summary for people, the Prometheus text for scrapers."""

import hmac
import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from operations import metrics, prometheus

WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=366)


def _whole_numbers_up_to(limit: int) -> str:
    """A regular expression for the whole numbers 1 to ``limit``, without leading zeros."""
    digits = str(limit)
    alternatives = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for position, digit in enumerate(digits):
        lowest = 1 if position == 0 else 0
        if int(digit) > lowest:
            rest = len(digits) - position - 1
            alternatives.append(f"{digits[:position]}[{lowest}-{int(digit) - 1}][0-9]{{{rest}}}")
    alternatives.append(digits)
    return "|".join(alternatives)


# Every window from 1 second to MAX_WINDOW, and nothing else, as one expression: the field
# checks with it and the schema publishes it, so a client knows the limits exactly.
_WINDOW = "|".join(
    f"(?:{_whole_numbers_up_to(int(MAX_WINDOW.total_seconds()) // seconds)}){unit}"
    + ("?" if unit == "s" else "")
    for unit, seconds in WINDOW_UNITS.items()
)
WINDOW_PATTERN = rf"^\s*(?:{_WINDOW})?\s*$"


class WindowField(serializers.Field):
    """A time span as seconds (``3600``) or a number and a unit: ``15m``, ``24h``, ``7d``."""

    default_error_messages = {
        "invalid": "Give seconds (3600) or a number with s, m, h, d or w (15m, 24h, 7d).",
        "range": "Give a window of at least 1 second and at most 366 days.",
    }

    def to_internal_value(self, data) -> timedelta:
        text = str(data).strip()
        if not text:  # as if not given, like an empty ?window=
            return DEFAULT_WINDOW
        match = re.fullmatch(f"(?:{_WINDOW})", text)
        if match is None:
            self.fail("range" if re.fullmatch("[0-9]+[smhdw]?", text) else "invalid")
        return timedelta(seconds=int(text.rstrip("smhdw")) * WINDOW_UNITS.get(text[-1], 1))

    def to_representation(self, value: timedelta) -> int:
        return int(value.total_seconds())


class TaskMetricsApi(APIView):
    """What the tasks did over a window: staff see everyone's, other users their own.

    ``GET /api/v1/tasks/metrics?window=24h`` (seconds, or a number with s, m, h, d or w;
    default 24h, at most 366d) answers, counting tasks created within the window::

        {
          "window": {"seconds": 86400, "since": "2025-01-01T10:00:00Z", "until": "…"},
          "scope": "all",                 // "own" for users who are not staff
          "total": 120,
          "by_status": {"queued": 3, "running": 2, "retrying": 1, "succeeded": 100,
                        "failed": 8, "cancelled": 4, "timed_out": 2},
          "finished": 114,                // succeeded + failed + cancelled + timed_out
          "success_rate": 0.8772,         // succeeded / finished; null if none finished
          "failure_rate": 0.0877,         // (failed + timed_out) / finished
          "retries": 9,                   // attempts beyond the first that started
          "retried_tasks": 6,             // tasks with more than one attempt
          "cancellations": 4,
          "running": 2,                   // running now, whenever created
          "queue_depths": {"default": 0, "long": null},  // staff only (else null);
                                                         // null: broker did not answer
          "task_types": {
            "documents.process": {
              "count": 40, "succeeded": 35, "failed": 3, "timed_out": 1, "cancelled": 1,
              // seconds, of succeeded tasks (last attempt); null if none
              "duration_seconds": {"p50": 4.2, "p95": 31.0, "max": 58.3}
            }
          }
        }

    An invalid window answers 400: ``{"window": ["Give seconds (3600) or …"]}``.
    """

    class InputSerializer(serializers.Serializer):
        window = WindowField(required=False, default=DEFAULT_WINDOW)

    # Named for the schema: other views' nested serializers are "Output" too.
    @extend_schema_serializer(component_name="TaskMetrics")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="TaskMetricsWindow")
        class WindowSerializer(serializers.Serializer):
            seconds = serializers.IntegerField()
            since = serializers.DateTimeField()
            until = serializers.DateTimeField()

        @extend_schema_serializer(component_name="TaskTypeMetrics")
        class TaskTypeSerializer(serializers.Serializer):
            count = serializers.IntegerField()
            succeeded = serializers.IntegerField()
            failed = serializers.IntegerField()
            timed_out = serializers.IntegerField()
            cancelled = serializers.IntegerField()
            duration_seconds = serializers.DictField(child=serializers.FloatField(allow_null=True))

        window = WindowSerializer()
        scope = serializers.ChoiceField(choices=["all", "own"])
        total = serializers.IntegerField()
        by_status = serializers.DictField(child=serializers.IntegerField())
        finished = serializers.IntegerField()
        success_rate = serializers.FloatField(allow_null=True)
        failure_rate = serializers.FloatField(allow_null=True)
        retries = serializers.IntegerField()
        retried_tasks = serializers.IntegerField()
        cancellations = serializers.IntegerField()
        running = serializers.IntegerField()
        queue_depths = serializers.DictField(
            child=serializers.IntegerField(allow_null=True), allow_null=True
        )
        task_types = serializers.DictField(child=TaskTypeSerializer())

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "window",
                str,
                description="Seconds, or 15m, 24h, 7d, 2w: from 1 second to 366 days. Default 24h.",
                pattern=WINDOW_PATTERN,
            )
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        summary = metrics.task_metrics_for_user(
            user=request.user, window=params.validated_data["window"]
        )
        return Response(self.OutputSerializer(summary).data)


class MetricsBearerAuthentication(BaseAuthentication):
    """``Authorization: Bearer <METRICS_BEARER_TOKEN>``: a scraper, which is no user."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Give the token after 'Bearer', no spaces.")
        # Constant time: how long a wrong token takes must not tell how much of it was right.
        if not hmac.compare_digest(parts[1], settings.METRICS_BEARER_TOKEN.encode()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return AnonymousUser(), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="metrics"'


class HasMetricsBearerToken(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.successful_authenticator, MetricsBearerAuthentication)


class FirstRendererNegotiation(BaseContentNegotiation):
    """Always the view's first renderer: a scraper's Accept header must not turn an
    error into 406. The metrics themselves are negotiated by prometheus_client."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PrometheusMetricsApi(APIView):
    """``GET /metrics``: Prometheus text format (see operations/prometheus.py for the metrics).

    With METRICS_BEARER_TOKEN set, only ``Authorization: Bearer <token>`` is let in (else
    401); without it, only staff, signed in or with their API token (401, or 403 for
    users who are not staff). Errors are JSON, like the rest of the API.
    """

    renderer_classes = [JSONRenderer]  # errors only; metrics go out as a plain HttpResponse
    content_negotiation_class = FirstRendererNegotiation

    def get_authenticators(self):
        if settings.METRICS_BEARER_TOKEN:
            return [MetricsBearerAuthentication()]
        return super().get_authenticators()

    def get_permissions(self):
        if settings.METRICS_BEARER_TOKEN:
            return [HasMetricsBearerToken()]
        return [IsAdminUser()]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request):
        body, content_type = prometheus.metrics_exposition(accept=request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)
