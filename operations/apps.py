from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Health, metrics and scheduled maintenance: what the people running the service use."""

    name = "operations"
