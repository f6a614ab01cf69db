"""Staff register endpoints for users in the admin, checked like the API's, and redeliver."""

import pytest

from tasks_app.models import TaskStatus
from tasks_app.transitions import task_claim, task_mark_succeeded
from tests.factories import TaskRecordFactory, UserFactory
from webhooks.events import events_make_for_finished
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/webhooks/webhookendpoint/"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _add(admin_client, user, url):
    return admin_client.post(
        f"{ENDPOINTS}add/",
        {"owner": user.pk, "url": url, "description": "ops", "event_types": ["task.failed"]},
    )


def test_staff_register_an_endpoint_for_a_user(admin_client, user):
    response = _add(admin_client, user, "https://hooks.example.com/in")
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.owner, endpoint.event_types) == (user, ["task.failed"])
    assert endpoint.secret.startswith("whsec_")
    page = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page


def test_a_private_address_is_refused_in_the_admin_too(admin_client, user):
    response = _add(admin_client, user, "http://192.168.1.10/hook")
    assert response.status_code == 200
    assert "private or reserved" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_staff_disable_and_redeliver(admin_client, user):
    endpoint = endpoint_create(owner=user, url="https://hooks.example.com/in", event_types=[])
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    task_claim(task_id=str(record.pk), worker="w1")
    task_mark_succeeded(task_id=str(record.pk), result=None)
    events_make_for_finished()
    WebhookDelivery.objects.update(status=DeliveryStatus.FAILED)

    admin_client.post(ENDPOINTS, {"action": "disable_selected", "_selected_action": [endpoint.pk]})
    assert WebhookEndpoint.objects.get().status == "disabled"
    delivery = WebhookDelivery.objects.get()
    admin_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver_selected", "_selected_action": [delivery.pk]},
    )
    assert WebhookDelivery.objects.get().status == "pending"
    assert (
        admin_client.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").status_code
        == 200
    )
