"""The service's URLs plus two baselines for bench/http_submit.py, served by the same gunicorn.

- ``POST /bench/noop/``: an authenticated DRF POST that writes nothing.
- ``POST /bench/insert/``: the same, inserting one TaskRecord (no broker message).

Only the benchmark's settings (bench/settings.py) route here; the service never does.
"""

from django.urls import path
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as service_urlpatterns
from tasks_app.models import TaskRecord, TaskStatus


class NoopApi(APIView):
    def post(self, request):
        return Response({}, status=status.HTTP_202_ACCEPTED)


class InsertApi(APIView):
    def post(self, request):
        record = TaskRecord.objects.create(
            owner=request.user,
            task_type="diagnostics.sleep",
            queue="default",
            priority=5,
            input={"seconds": 0},
            # Finished, so that the rows do not count against the user's active limit.
            status=TaskStatus.SUCCEEDED,
        )
        return Response({"id": str(record.pk)}, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("bench/noop/", NoopApi.as_view()),
    path("bench/insert/", InsertApi.as_view()),
    *service_urlpatterns,
]
