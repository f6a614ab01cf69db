from django.urls import path, re_path

from tasks_app.apis import dead_letters, events, tasks, workflows

urlpatterns = [
    path("tasks/", tasks.TaskCollectionApi.as_view(), name="task-list"),
    # Before the detail route, which would take "batch" for an id; with or without the slash.
    re_path(r"^tasks/batch/?$", tasks.TaskBatchApi.as_view(), name="task-batch"),
    re_path(r"^tasks/events/?$", events.TaskEventsApi.as_view(), name="task-events"),
    path("tasks/<str:task_id>/", tasks.TaskDetailApi.as_view(), name="task-detail"),
    path("tasks/<str:task_id>/cancel/", tasks.TaskCancelApi.as_view(), name="task-cancel"),
    path("task-types/", tasks.TaskTypeListApi.as_view(), name="task-type-list"),
    path("workflows/", workflows.WorkflowCollectionApi.as_view(), name="workflow-list"),
    path(
        "workflows/<str:workflow_id>/",
        workflows.WorkflowDetailApi.as_view(),
        name="workflow-detail",
    ),
    path(
        "workflows/<str:workflow_id>/cancel/",
        workflows.WorkflowCancelApi.as_view(),
        name="workflow-cancel",
    ),
    path("dead-letters/", dead_letters.DeadLetterListApi.as_view(), name="dead-letter-list"),
    path("dead-letters/bulk/", dead_letters.DeadLetterBulkApi.as_view(), name="dead-letter-bulk"),
    path(
        "dead-letters/<str:dead_letter_id>/",
        dead_letters.DeadLetterDetailApi.as_view(),
        name="dead-letter-detail",
    ),
    path(
        "dead-letters/<str:dead_letter_id>/requeue/",
        dead_letters.DeadLetterRequeueApi.as_view(),
        name="dead-letter-requeue",
    ),
    path(
        "dead-letters/<str:dead_letter_id>/discard/",
        dead_letters.DeadLetterDiscardApi.as_view(),
        name="dead-letter-discard",
    ),
]
