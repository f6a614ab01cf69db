from django.urls import path

from tasks_app import apis

urlpatterns = [
    path("tasks/", apis.TaskCollectionApi.as_view(), name="task-list"),
    path("tasks/<str:task_id>/", apis.TaskDetailApi.as_view(), name="task-detail"),
    path("tasks/<str:task_id>/cancel/", apis.TaskCancelApi.as_view(), name="task-cancel"),
    path("task-types/", apis.TaskTypeListApi.as_view(), name="task-type-list"),
]
