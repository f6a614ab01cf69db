"""Operations endpoints. Included before tasks_app's, so /api/v1/tasks/health and
/api/v1/tasks/metrics are not taken for task ids."""

from django.urls import re_path

from operations.apis import health, metrics

urlpatterns = [
    re_path(r"^api/v1/health/live/?$", health.HealthLiveApi.as_view(), name="health-live"),
    re_path(r"^api/v1/health/ready/?$", health.HealthReadyApi.as_view(), name="health-ready"),
    re_path(r"^api/v1/tasks/health/?$", health.TaskHealthApi.as_view(), name="task-health"),
    re_path(r"^api/v1/tasks/metrics/?$", metrics.TaskMetricsApi.as_view(), name="task-metrics"),
    re_path(r"^metrics/?$", metrics.PrometheusMetricsApi.as_view(), name="prometheus-metrics"),
]

__all__ = ["re_path", "urlpatterns"]
