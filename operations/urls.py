"""Operations endpoints. Included before tasks_app's, so /api/v1/tasks/health and
/api/v1/tasks/metrics are not taken for task ids."""

from django.urls import re_path

urlpatterns = [
    # health routes (operations/apis/health.py)
    # metrics routes (operations/apis/metrics.py)
]

__all__ = ["re_path", "urlpatterns"]
