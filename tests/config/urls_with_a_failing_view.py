"""The project's URLs plus views that fail as real code can, to see what clients get."""

from django.urls import path
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns


class FailingApi(APIView):
    def get(self, request):
        raise RuntimeError("a bug")


def failing_django_view(request):
    raise RuntimeError("a bug")


urlpatterns = [
    path("api/v1/failing/", FailingApi.as_view()),
    path("admin/failing/", failing_django_view),
    *project_urlpatterns,
]
