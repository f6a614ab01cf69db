from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "Tasks"

    def ready(self) -> None:
        # Registering task types fills the registry in the web process too (the worker
        # imports tasks modules through Celery's autodiscovery).
        from tasks_app import signals, tasks  # noqa: F401
