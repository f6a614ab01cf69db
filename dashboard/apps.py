from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The web pages people use: their tasks, their documents, their API keys; staff's
    view of the whole system. Pages only; every write goes through the other apps'
    services and every read through their selectors."""

    name = "dashboard"
    verbose_name = "Dashboard"
