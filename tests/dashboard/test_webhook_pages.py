"""A person's webhooks pages: endpoints added (their secret shown once), disabled, enabled,
rotated and deleted; an endpoint's delivery log, a delivery's attempts and its
redelivery; the callback secret; others' ids are 404."""

import re

import pytest
from django.test import Client
from django.utils import timezone

from tasks_app.models import TaskStatus, Workflow
from tasks_app.transitions import task_claim, task_mark_succeeded
from tasks_app.workflows import workflow_cancel
from tests.factories import TaskRecordFactory
from tests.tasks_app.test_workflows import SLEEP
from webhooks import services
from webhooks.events import events_make_for_finished
from webhooks.models import (
    CallbackSecret,
    DeliveryStatus,
    EndpointStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.sending import Outcome

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/in"


def _shown_secret(response) -> str:
    return re.search(r'id="new-secret"[^>]*value="(whsec_[^"]+)"', response.content.decode())[1]


def _endpoint(owner, **fields) -> WebhookEndpoint:
    return services.endpoint_create(owner=owner, url=HOOK, event_types=[], **fields)


def failed_delivery(owner) -> WebhookDelivery:
    """A task's end, sent to the owner's endpoint: one attempt answered 503, then given up."""
    record = TaskRecordFactory(owner=owner, status=TaskStatus.QUEUED)
    task_claim(task_id=str(record.pk), worker="w1")
    task_mark_succeeded(task_id=str(record.pk), result=None)
    events_make_for_finished()
    delivery = WebhookDelivery.objects.get(event__task_id=record.pk)
    outcome = Outcome(status_code=503, duration_ms=41, response_body="down for maintenance")
    services.delivery_record_attempt(
        delivery=delivery, outcome=outcome, attempted_at=timezone.now()
    )
    services.delivery_give_up(delivery=delivery, reason="Every attempt failed.")
    delivery.refresh_from_db()
    return delivery


def test_an_endpoint_added_on_the_page_shows_its_secret_once(browser, user):
    response = browser.post(
        "/webhooks/",
        {"url": HOOK, "description": "billing", "event_types": ["task.failed", "task.succeeded"]},
    )

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = _shown_secret(response)
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.owner, endpoint.url, endpoint.description) == (user, HOOK, "billing")
    assert endpoint.event_types == ["task.failed", "task.succeeded"]
    assert endpoint.secret == secret
    # Never again: the list and the endpoint's page show the endpoint without it.
    listed = browser.get("/webhooks/")
    assert "no-store" in listed["Cache-Control"]
    assert HOOK in listed.content.decode() and secret not in listed.content.decode()
    assert secret not in browser.get(f"/webhooks/endpoints/{endpoint.pk}/").content.decode()


def test_no_event_type_chosen_means_every_event(browser):
    assert browser.post("/webhooks/", {"url": HOOK}).status_code == 201

    assert WebhookEndpoint.objects.get().event_types == []
    assert "Every event" in browser.get("/webhooks/").content.decode()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.1/", "private or reserved"),
        ("ftp://hooks.example.com/in", "Only http:// and https://"),
    ],
)
def test_an_address_the_service_will_not_send_to_is_a_form_error(browser, url, words):
    response = browser.post("/webhooks/", {"url": url, "description": "mine"})

    assert response.status_code == 400
    page = response.content.decode()
    assert words in page
    assert re.search(r'<p class="field-error" role="alert">[^<]*' + re.escape(words), page)
    assert 'id="endpoint-url"' in page and 'aria-invalid="true"' in page
    assert f'value="{url}"' in page  # what was typed is kept
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_event_type_or_a_missing_url_is_a_form_error(browser):
    assert (
        browser.post("/webhooks/", {"url": HOOK, "event_types": ["task.exploded"]}).status_code
        == 400
    )
    assert browser.post("/webhooks/", {"url": ""}).status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_past_the_limit_of_endpoints_the_form_says_so(browser, user, settings):
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER = 1
    _endpoint(user)

    response = browser.post("/webhooks/", {"url": HOOK})

    assert response.status_code == 429
    assert "delete one you no longer use" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 1


def test_an_endpoint_is_disabled_and_enabled_again(browser, user):
    endpoint = _endpoint(user)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())

    disabled = browser.post(f"/webhooks/endpoints/{endpoint.pk}/disable/", follow=True)

    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DISABLED
    assert "is disabled" in disabled.content.decode()
    assert "Disabled by its owner." in disabled.content.decode()  # the endpoint's page
    enabled = browser.post(
        f"/webhooks/endpoints/{endpoint.pk}/enable/", {"next": "/webhooks/"}, follow=True
    )
    assert enabled.redirect_chain[-1][0] == "/webhooks/"
    endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.disabled_reason, endpoint.failing_since) == (
        EndpointStatus.ENABLED,
        "",
        None,
    )


def test_a_rotation_shows_the_new_secret_once_and_keeps_the_old_one_signing(browser, user):
    endpoint = _endpoint(user)
    old_secret = endpoint.secret

    response = browser.post(f"/webhooks/endpoints/{endpoint.pk}/rotate-secret/")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new_secret = _shown_secret(response)
    assert new_secret != old_secret
    endpoint.refresh_from_db()
    assert endpoint.signing_secrets() == [new_secret, old_secret]
    # Its buttons go back to the Webhooks page, not to the rotation (a POST only).
    assert 'name="next" value="/webhooks/"' in response.content.decode()
    assert new_secret not in browser.get("/webhooks/").content.decode()
    assert (
        "The previous one signs too"
        in browser.get(f"/webhooks/endpoints/{endpoint.pk}/").content.decode()
    )


def test_a_delete_asks_first_then_removes_the_endpoint_and_its_log(browser, user):
    endpoint = _endpoint(user)
    failed_delivery(user)

    confirm = browser.get(f"/webhooks/endpoints/{endpoint.pk}/delete/")
    assert confirm.status_code == 200
    assert "Delete this endpoint?" in confirm.content.decode()
    assert WebhookEndpoint.objects.exists()

    deleted = browser.post(f"/webhooks/endpoints/{endpoint.pk}/delete/", follow=True)
    assert "is deleted" in deleted.content.decode()
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_the_endpoint_page_lists_its_deliveries_newest_first_by_cursor(browser, user):
    endpoint = _endpoint(user)
    failed = failed_delivery(user)

    page = browser.get(f"/webhooks/endpoints/{endpoint.pk}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert f'id="delivery-{failed.pk}"' in text
    assert "task.succeeded" in text and "HTTP 503" in text and "Failed" in text
    assert f"/tasks/{failed.event.task_id}/" in text
    assert browser.get(f"/webhooks/endpoints/{endpoint.pk}/?cursor=garbage").status_code == 404


def test_the_delivery_page_shows_the_body_and_each_attempt(browser, user):
    _endpoint(user)
    delivery = failed_delivery(user)

    page = browser.get(f"/webhooks/deliveries/{delivery.pk}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert delivery.event_id in text
    assert "&quot;type&quot;:&quot;task.succeeded&quot;" in text  # the body, as sent
    assert 'id="attempt-1"' in text
    assert "HTTP 503" in text and "41 ms" in text and "down for maintenance" in text
    assert "Redeliver" in text


def test_a_workflow_events_delivery_links_to_its_workflow(browser, user, api):
    endpoint = _endpoint(user)
    response = api.post(
        "/api/v1/workflows/",
        {"name": "wf", "steps": [{"name": "only", **SLEEP}]},
        format="json",
    )
    workflow_id = response.json()["id"]
    workflow_cancel(workflow=Workflow.objects.get(pk=workflow_id))
    events_make_for_finished()
    delivery = WebhookDelivery.objects.get(event__event_type="workflow.cancelled")

    page = browser.get(f"/webhooks/deliveries/{delivery.pk}/").content.decode()
    log = browser.get(f"/webhooks/endpoints/{endpoint.pk}/").content.decode()

    assert f'href="/workflows/{workflow_id}/"' in page
    assert f'href="/workflows/{workflow_id}/"' in log
    assert "workflow.cancelled" in log and "task.cancelled" in log


def test_redeliver_moves_a_failed_delivery_back_to_pending(browser, user):
    _endpoint(user)
    delivery = failed_delivery(user)
    assert delivery.status == DeliveryStatus.FAILED

    response = browser.post(f"/webhooks/deliveries/{delivery.pk}/redeliver/", follow=True)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert "queued to be sent again" in response.content.decode()
    # Pending: no button, and a second post changes nothing.
    assert "Redeliver</button>" not in response.content.decode()
    again = browser.post(f"/webhooks/deliveries/{delivery.pk}/redeliver/", follow=True)
    assert "already waiting" in again.content.decode()


def test_another_users_endpoints_and_deliveries_are_404(browser, other_user):
    theirs = _endpoint(other_user)
    delivery = failed_delivery(other_user)

    assert HOOK not in browser.get("/webhooks/").content.decode()
    for path in (
        f"/webhooks/endpoints/{theirs.pk}/",
        f"/webhooks/endpoints/{theirs.pk}/delete/",
        f"/webhooks/deliveries/{delivery.pk}/",
    ):
        assert browser.get(path).status_code == 404, path
    for path in (
        f"/webhooks/endpoints/{theirs.pk}/disable/",
        f"/webhooks/endpoints/{theirs.pk}/rotate-secret/",
        f"/webhooks/endpoints/{theirs.pk}/delete/",
        f"/webhooks/deliveries/{delivery.pk}/redeliver/",
    ):
        assert browser.post(path).status_code == 404, path
    theirs_now = WebhookEndpoint.objects.get()
    assert (theirs_now.status, theirs_now.secret) == (EndpointStatus.ENABLED, theirs.secret)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


def test_the_callback_secret_is_shown_and_rotated(browser, user):
    first = browser.get("/webhooks/")
    secret = re.search(r'id="callback-secret"[^>]*value="(whsec_[^"]+)"', first.content.decode())[1]
    assert CallbackSecret.objects.get(owner=user).secret == secret

    rotated = browser.post("/webhooks/callback-secret/rotate/", follow=True)

    assert "callback secret is rotated" in rotated.content.decode()
    holder = CallbackSecret.objects.get(owner=user)
    assert holder.secret != secret and holder.signing_secrets() == [holder.secret, secret]
    assert holder.secret in rotated.content.decode()


def test_the_webhooks_pages_need_sign_in_and_csrf(user):
    endpoint = _endpoint(user)
    assert Client().get("/webhooks/").status_code == 302
    assert Client().get(f"/webhooks/endpoints/{endpoint.pk}/").status_code == 302
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/webhooks/", {"url": HOOK}).status_code == 403
    assert client.post(f"/webhooks/endpoints/{endpoint.pk}/delete/").status_code == 403
    assert client.post(f"/webhooks/endpoints/{endpoint.pk}/rotate-secret/").status_code == 403
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_the_latest_callbacks_are_listed_with_a_link_to_each(browser, user, other_user):
    assert "None of your tasks was submitted with a" in browser.get("/webhooks/").content.decode()
    for owner in (user, other_user):
        record = TaskRecordFactory(
            owner=owner, status=TaskStatus.QUEUED, callback_url="https://client.example.com/done"
        )
        task_claim(task_id=str(record.pk), worker="w1")
        task_mark_succeeded(task_id=str(record.pk), result=None)
    events_make_for_finished()
    mine = WebhookDelivery.objects.get(event__owner=user)
    theirs = WebhookDelivery.objects.get(event__owner=other_user)

    page = browser.get("/webhooks/").content.decode()

    assert f"/webhooks/deliveries/{mine.pk}/" in page
    assert f"/webhooks/deliveries/{theirs.pk}/" not in page
    assert browser.get(f"/webhooks/deliveries/{mine.pk}/").status_code == 200
