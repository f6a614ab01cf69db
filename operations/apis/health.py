"""Health endpoints: liveness and readiness for load balancers (no credentials), and the
staff view of how well the service is doing (``health.health_evaluate``).

Readiness is about this web process (its database), never about workers or beat: those
are the system's health, critical in /api/v1/tasks/health, Prometheus and alerts.
"""

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from operations import health, readiness


class HealthLiveApi(APIView):
    """The process is up and serving requests. Touches nothing else."""

    # No authentication at all: a load balancer sends no credentials, and a bad header
    # must not turn the probe into a 401.
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: inline_serializer("Live", {"status": serializers.CharField()})})
    def get(self, request):
        return Response({"status": "ok"})


class HealthReadyApi(APIView):
    """200 when this process can serve requests (its database answers); else 503."""

    authentication_classes = []
    permission_classes = [AllowAny]

    # Named for the schema: every API's nested "OutputSerializer" would be "Output" there.
    @extend_schema_serializer(component_name="ReadinessCheck")
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        ok = serializers.BooleanField()
        detail = serializers.CharField()

    ready_schema = inline_serializer(
        "Ready", {"status": serializers.CharField(), "checks": OutputSerializer(many=True)}
    )

    @extend_schema(responses={200: ready_schema, 503: ready_schema})
    def get(self, request):
        checks = readiness.readiness_checks()
        ready = all(check.ok for check in checks)
        return Response(
            {
                "status": "ok" if ready else "unavailable",
                "checks": self.OutputSerializer(checks, many=True).data,
            },
            status=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


@extend_schema_serializer(component_name="HealthCheckOutcome")
class CheckOutcomeSerializer(serializers.Serializer):
    check = serializers.CharField()
    status = serializers.CharField()
    message = serializers.CharField()
    numbers = serializers.DictField()


class TaskHealthApi(APIView):
    """Staff: healthy, degraded, critical or unknown, with the reasons and their numbers."""

    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="TaskHealth")
    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()
        checked_at = serializers.DateTimeField()
        reasons = CheckOutcomeSerializer(many=True)
        checks = CheckOutcomeSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request):
        return Response(self.OutputSerializer(health.health_evaluate()).data)
