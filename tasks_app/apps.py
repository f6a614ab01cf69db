from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "Tasks"

    def ready(self) -> None:
        from tasks_app import signals, workflows

        signals.connect_handlers()
        workflows.connect()
        # The one discovery of task types and beat's tasks: every installed app declares
        # them in its tasks.py. In every process (web, worker, beat), so the web process
        # knows the types it accepts and the worker the Celery tasks it runs.
        autodiscover_modules("tasks")
