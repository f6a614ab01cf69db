"""The webhooks API as a client sees it: endpoints with their secret shown once, errors
as JSON 4xx, another user's ids 404, the delivery log and redelivery, callbacks."""

import pytest

from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.transitions import task_claim, task_mark_succeeded
from tests.factories import TaskRecordFactory
from webhooks.events import events_make_for_finished
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhooks/endpoints/"


def _create(api, **body):
    return api.post(ENDPOINTS, {"url": "https://hooks.example.com/in", **body}, format="json")


def test_an_endpoint_is_created_with_its_secret_shown_once(api):
    response = _create(api, event_types=["task.failed", "document.completed"])
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["document.completed", "task.failed"]
    assert body["status"] == "enabled"

    listed = api.get(ENDPOINTS).json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(body["links"]["detail"]).json()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "private or reserved"),
        ("http://169.254.169.254/latest", "private or reserved"),
        ("http://[::1]/hook", "private or reserved"),
        ("http://2130706433/hook", "private or reserved"),
        ("ftp://example.com/hook", "Only http:// and https://"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("not a url", ""),
    ],
)
def test_an_address_the_service_will_not_send_to_is_a_400(api, url, message):
    response = _create(api, url=url)
    assert response.status_code == 400
    assert message in str(response.json())
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_event_type_is_a_400(api):
    response = _create(api, event_types=["task.exploded"])
    assert response.status_code == 400
    assert "event_types" in str(response.json())


def test_the_endpoint_limit_is_a_429(api, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER = 2
    assert [_create(api).status_code for _ in range(3)] == [201, 201, 429]
    assert "most allowed" in str(_create(api).json())


def test_another_users_endpoint_is_not_found(api, other_api):
    endpoint = _create(api).json()
    for response in (
        other_api.get(endpoint["links"]["detail"]),
        other_api.patch(endpoint["links"]["detail"], {"enabled": False}, format="json"),
        other_api.delete(endpoint["links"]["detail"]),
        other_api.post(endpoint["links"]["rotate-secret"]),
        other_api.get(endpoint["links"]["deliveries"]),
    ):
        assert response.status_code == 404
    assert WebhookEndpoint.objects.get().status == "enabled"


def test_an_endpoint_is_disabled_enabled_changed_and_deleted(api):
    endpoint = _create(api).json()
    url = endpoint["links"]["detail"]
    disabled = api.patch(url, {"enabled": False}, format="json").json()
    assert (disabled["status"], disabled["disabled_reason"]) == (
        "disabled",
        "Disabled by its owner.",
    )
    enabled = api.patch(url, {"enabled": True, "event_types": ["task.succeeded"]}, format="json")
    assert enabled.json()["status"] == "enabled"
    assert enabled.json()["event_types"] == ["task.succeeded"]
    assert api.patch(url, {"url": "http://10.0.0.1/"}, format="json").status_code == 400
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_a_rotation_gives_a_new_secret(api):
    endpoint = _create(api).json()
    rotated = api.post(endpoint["links"]["rotate-secret"]).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    stored = WebhookEndpoint.objects.get()
    assert stored.signing_secrets() == [rotated["secret"], endpoint["secret"]]


def test_the_delivery_log_and_a_redelivery(api, other_api, user):
    endpoint = _create(api).json()
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    task_claim(task_id=str(record.pk), worker="w1")
    task_mark_succeeded(task_id=str(record.pk), result=None)
    events_make_for_finished()
    WebhookDelivery.objects.update(status=DeliveryStatus.FAILED, attempts=10)

    [item] = api.get(endpoint["links"]["deliveries"]).json()["results"]
    assert (item["event_type"], item["task_id"], item["status"]) == (
        "task.succeeded",
        str(record.pk),
        "failed",
    )
    assert item["event_id"].startswith("msg_")
    detail = api.get(item["links"]["detail"]).json()
    assert '"type":"task.succeeded"' in detail["payload"]
    assert detail["attempt_log"] == []
    assert other_api.get(item["links"]["detail"]).status_code == 404
    assert other_api.post(item["links"]["redeliver"]).status_code == 404

    redelivered = api.post(item["links"]["redeliver"])
    assert redelivered.status_code == 202
    assert (redelivered.json()["status"], redelivered.json()["attempts"]) == ("pending", 0)
    assert (
        api.get("/api/v1/webhooks/deliveries/?status=pending").json()["results"][0]["id"]
        == item["id"]
    )


def test_the_callback_secret_is_made_on_first_read_and_rotated(api, other_api):
    first = api.get("/api/v1/webhooks/callback-secret/").json()
    assert first["secret"].startswith("whsec_")
    assert api.get("/api/v1/webhooks/callback-secret/").json()["secret"] == first["secret"]
    assert other_api.get("/api/v1/webhooks/callback-secret/").json()["secret"] != first["secret"]
    rotated = api.post("/api/v1/webhooks/callback-secret/").json()
    assert rotated["secret"] != first["secret"] and rotated["previous_secret_expires_at"]


def test_a_submit_takes_a_callback_url_checked_as_endpoints_are(api):
    submit = {"task_type": "diagnostics.sleep", "input": {"seconds": 0, "steps": 1}}
    refused = api.post(
        "/api/v1/tasks/", {**submit, "callback_url": "http://10.1.2.3/done"}, format="json"
    )
    assert refused.status_code == 400
    assert "callback_url" in str(refused.json())
    assert "private or reserved" in str(refused.json())
    accepted = api.post(
        "/api/v1/tasks/",
        {**submit, "callback_url": "https://client.example.com/done"},
        format="json",
    )
    assert accepted.status_code == 202
    assert accepted.json()["callback_url"] == "https://client.example.com/done"
    assert accepted.json()["workflow"] is None
    assert TaskRecord.objects.get(pk=accepted.json()["id"]).callback_url == (
        "https://client.example.com/done"
    )
