"""The webhooks' figures in every Prometheus scrape (registered with operations.prometheus):

- ``jobservice_webhook_announcements_pending`` and ``…_oldest_timestamp_seconds``: finished
  tasks marked for the webhooks process that it has not made events of yet, and when the
  oldest finished. Growing old means no webhooks process runs;
- ``jobservice_webhook_deliveries_due`` and ``…_oldest_timestamp_seconds``: deliveries
  whose next attempt is due now, and since when the longest-waiting one is. Growing old
  means the process cannot keep up, or is stuck;
- ``jobservice_webhook_endpoints{status}``: endpoints enabled and disabled.

Each is read through a small partial index; no sample of an oldest time while there is none.
"""

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from tasks_app.models import TaskRecord
from webhooks.models import EndpointStatus, WebhookDelivery, WebhookEndpoint


class WebhooksCollector:
    def collect(self):
        pending = TaskRecord.objects.filter(announce_pending=True).aggregate(
            count=Count("pk"), oldest=Min("finished_at")
        )
        yield _gauge(
            "jobservice_webhook_announcements_pending",
            "Finished tasks whose webhook events are not made yet.",
            pending["count"],
        )
        yield _oldest(
            "jobservice_webhook_announcements_oldest_timestamp_seconds",
            "When the longest-waiting of them finished (Unix time).",
            pending["oldest"],
        )
        due = WebhookDelivery.objects.due(timezone.now()).aggregate(
            count=Count("pk"), oldest=Min("next_attempt_at")
        )
        yield _gauge(
            "jobservice_webhook_deliveries_due",
            "Webhook deliveries whose next attempt is due now.",
            due["count"],
        )
        yield _oldest(
            "jobservice_webhook_deliveries_due_oldest_timestamp_seconds",
            "Since when the longest-waiting due delivery has been due (Unix time).",
            due["oldest"],
        )
        endpoints = GaugeMetricFamily(
            "jobservice_webhook_endpoints", "Webhook endpoints, by status.", labels=["status"]
        )
        counts = dict(
            WebhookEndpoint.objects.values_list("status").annotate(count=Count("pk")).order_by()
        )
        for status in EndpointStatus.values:
            endpoints.add_metric([status], counts.get(status, 0))
        yield endpoints


def _gauge(name: str, documentation: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _oldest(name: str, documentation: str, moment) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[])
    if moment is not None:
        family.add_metric([], moment.timestamp())
    return family
