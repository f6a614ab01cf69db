from django.urls import path

from dashboard.views import api_keys, tasks

app_name = "dashboard"

urlpatterns = [
    path("", tasks.task_list, name="home"),
    path("tasks/", tasks.task_list, name="task-list"),
    path("tasks/new/", tasks.task_submit_choose, name="task-submit-choose"),
    path("tasks/new/<str:task_type>/", tasks.task_submit, name="task-submit"),
    path("tasks/<uuid:task_id>/", tasks.task_detail, name="task-detail"),
    path("tasks/<uuid:task_id>/cancel/", tasks.task_cancel, name="task-cancel"),
    path("tasks/<uuid:task_id>/result.json", tasks.task_result_download, name="task-result"),
    path("keys/", api_keys.api_key_list, name="api-keys"),
    path("keys/<int:api_key_id>/revoke/", api_keys.api_key_revoke, name="api-key-revoke"),
]
