from django.urls import path

from dashboard.views import (
    api_keys,
    documents,
    system,
    tasks,
    webhook_deliveries,
    webhooks,
    workflows,
)

app_name = "dashboard"

urlpatterns = [
    path("", tasks.task_list, name="home"),
    path("tasks/", tasks.task_list, name="task-list"),
    path("tasks/new/", tasks.task_submit_choose, name="task-submit-choose"),
    path("tasks/new/<str:task_type>/", tasks.task_submit, name="task-submit"),
    path("tasks/<uuid:task_id>/", tasks.task_detail, name="task-detail"),
    path("tasks/<uuid:task_id>/cancel/", tasks.task_cancel, name="task-cancel"),
    path("tasks/<uuid:task_id>/result.json", tasks.task_result_download, name="task-result"),
    path("workflows/", workflows.workflow_list, name="workflow-list"),
    path("workflows/<uuid:workflow_id>/", workflows.workflow_detail, name="workflow-detail"),
    path("workflows/<uuid:workflow_id>/cancel/", workflows.workflow_cancel, name="workflow-cancel"),
    path("documents/", documents.document_list, name="document-list"),
    path("documents/search/", documents.document_search, name="document-search"),
    path("documents/<uuid:document_id>/", documents.document_detail, name="document-detail"),
    path(
        "documents/<uuid:document_id>/reprocess/",
        documents.document_reprocess,
        name="document-reprocess",
    ),
    path("documents/<uuid:document_id>/delete/", documents.document_delete, name="document-delete"),
    path("system/", system.system, name="system"),
    path(
        "system/dead-letters/<uuid:dead_letter_id>/requeue/",
        system.dead_letter_resolve,
        {"action": "requeue"},
        name="dead-letter-requeue",
    ),
    path(
        "system/dead-letters/<uuid:dead_letter_id>/discard/",
        system.dead_letter_resolve,
        {"action": "discard"},
        name="dead-letter-discard",
    ),
    path("keys/", api_keys.api_key_list, name="api-keys"),
    path("keys/<int:api_key_id>/revoke/", api_keys.api_key_revoke, name="api-key-revoke"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path(
        "webhooks/callback-secret/rotate/",
        webhooks.callback_secret_rotate,
        name="callback-secret-rotate",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/",
        webhooks.endpoint_detail,
        name="webhook-endpoint",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/enable/",
        webhooks.endpoint_set_enabled,
        {"enabled": True},
        name="webhook-endpoint-enable",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/disable/",
        webhooks.endpoint_set_enabled,
        {"enabled": False},
        name="webhook-endpoint-disable",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/rotate-secret/",
        webhooks.endpoint_rotate_secret,
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<uuid:endpoint_id>/delete/",
        webhooks.endpoint_delete,
        name="webhook-endpoint-delete",
    ),
    path(
        "webhooks/deliveries/<uuid:delivery_id>/",
        webhook_deliveries.delivery_detail,
        name="webhook-delivery",
    ),
    path(
        "webhooks/deliveries/<uuid:delivery_id>/redeliver/",
        webhook_deliveries.delivery_redeliver,
        name="webhook-delivery-redeliver",
    ),
]
