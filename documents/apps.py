from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"

    def ready(self) -> None:
        # Registers the documents.process task type in the web process as well.
        from documents import tasks  # noqa: F401
