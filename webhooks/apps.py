from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self):
        from django.db.models import Exists, OuterRef, Q

        from operations.prometheus import collector_register
        from tasks_app.announcements import callback_urls_checked_by
        from tasks_app.models.task_record import announce_finishes_where
        from tasks_app.models.workflow import announce_workflow_moves_where
        from webhooks.metrics import WebhooksCollector
        from webhooks.models import EndpointStatus, WebhookEndpoint
        from webhooks.services import webhook_url_check

        # A finish is to be announced when its owner has an enabled endpoint or the task
        # has a callback: one index probe, in the finish's own statement.
        has_endpoint = Exists(
            WebhookEndpoint.objects.filter(
                owner_id=OuterRef("owner_id"), status=EndpointStatus.ENABLED
            )
        )
        announce_finishes_where(Q(has_endpoint) | ~Q(callback_url=""))
        # A workflow's end or failure, when its owner has an enabled endpoint (a workflow
        # has no callback_url of its own; its tasks' callbacks are theirs).
        announce_workflow_moves_where(Q(has_endpoint))
        callback_urls_checked_by(webhook_url_check)
        collector_register(WebhooksCollector)
