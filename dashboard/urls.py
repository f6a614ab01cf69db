from django.urls import path

from dashboard.views import tasks

app_name = "dashboard"

urlpatterns = [
    path("", tasks.task_list, name="home"),
    path("tasks/", tasks.task_list, name="task-list"),
    path("tasks/new/", tasks.task_submit_choose, name="task-submit-choose"),
    path("tasks/new/<str:task_type>/", tasks.task_submit, name="task-submit"),
    path("tasks/<uuid:task_id>/", tasks.task_detail, name="task-detail"),
    path("tasks/<uuid:task_id>/cancel/", tasks.task_cancel, name="task-cancel"),
    path("tasks/<uuid:task_id>/result.json", tasks.task_result_download, name="task-result"),
]
