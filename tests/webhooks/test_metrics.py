"""The webhooks' figures in a Prometheus scrape, as a scraper reads them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tasks_app.models import TaskRecord
from tasks_app.transitions import task_mark_succeeded
from tests.conftest import client_for
from tests.webhooks.test_events import _endpoint, _running
from webhooks.events import events_make_for_finished
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def _scrape(staff_user) -> dict:
    response = client_for(staff_user).get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name.startswith("jobservice_webhook")
    }


def test_a_quiet_service_reports_nothing_waiting(staff_user):
    samples = _scrape(staff_user)
    assert samples[("jobservice_webhook_announcements_pending", ())] == 0
    assert samples[("jobservice_webhook_deliveries_due", ())] == 0
    assert ("jobservice_webhook_announcements_oldest_timestamp_seconds", ()) not in samples
    assert samples[("jobservice_webhook_endpoints", (("status", "enabled"),))] == 0


def test_finishes_not_announced_and_deliveries_due_are_counted_with_their_age(user, staff_user):
    _endpoint(user)
    finished = []
    for _ in range(2):
        record = _running(user)
        task_mark_succeeded(task_id=str(record.pk), result=None)
        finished.append(record)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    TaskRecord.objects.filter(pk=finished[0].pk).update(finished_at=an_hour_ago)
    samples = _scrape(staff_user)
    assert samples[("jobservice_webhook_announcements_pending", ())] == 2
    oldest = samples[("jobservice_webhook_announcements_oldest_timestamp_seconds", ())]
    assert abs(oldest - an_hour_ago.timestamp()) < 1

    events_make_for_finished()
    WebhookDelivery.objects.update(next_attempt_at=an_hour_ago)
    samples = _scrape(staff_user)
    assert samples[("jobservice_webhook_announcements_pending", ())] == 0
    assert samples[("jobservice_webhook_deliveries_due", ())] == 2
    due = samples[("jobservice_webhook_deliveries_due_oldest_timestamp_seconds", ())]
    assert abs(due - an_hour_ago.timestamp()) < 1
    assert samples[("jobservice_webhook_endpoints", (("status", "enabled"),))] == 1
