"""Deliveries as a receiver sees them: signed (verified with the reference library),
retried on a schedule, logged, and never sent where the SSRF rules forbid."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.http import http_date
from standardwebhooks import Webhook

from tasks_app.models import TaskStatus
from tasks_app.transitions import task_claim, task_mark_succeeded
from tests.factories import TaskRecordFactory
from tests.waiting import wait_until
from webhooks.events import events_make_for_finished
from webhooks.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from webhooks.sender import Sender
from webhooks.sending import _retry_after
from webhooks.services import (
    deliveries_claim_due,
    delivery_redeliver,
    endpoint_create,
    secret_rotate,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _finish_one(owner):
    record = TaskRecordFactory(owner=owner, status=TaskStatus.QUEUED)
    task_claim(task_id=str(record.pk), worker="w1")
    task_mark_succeeded(task_id=str(record.pk), result={"n": 1})
    return record


def _run_sender_until(condition, timeout=15.0):
    stop = threading.Event()
    sender = Sender(threads=2, poll_seconds=0.05)
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    try:
        wait_until(condition, timeout=timeout, what="the sender to get there")
    finally:
        stop.set()
        thread.join(timeout=30)


def test_a_delivery_is_signed_as_standard_webhooks_says(user, receiver, webhook_settings):
    endpoint = endpoint_create(owner=user, url=receiver.url, event_types=[])
    record = _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())

    [request] = receiver.requests
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "task.succeeded"
    assert payload["data"]["id"] == str(record.pk)
    delivery = WebhookDelivery.objects.get()
    assert request.headers["webhook-id"] == delivery.event_id
    assert abs(int(request.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 30
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code == 200 and attempt.duration_ms >= 0


def test_after_a_rotation_both_secrets_sign(user, receiver, webhook_settings):
    endpoint = endpoint_create(owner=user, url=receiver.url, event_types=[])
    old_secret = endpoint.secret
    secret_rotate(holder=endpoint)
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(request.body, request.headers)
    Webhook(endpoint.secret).verify(request.body, request.headers)


def test_failed_answers_are_retried_with_the_same_id_and_logged(user, receiver, webhook_settings):
    receiver.answer = lambda seen, _: (503 if seen < 3 else 200, {}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())

    assert len(receiver.requests) == 3
    assert len(receiver.ids()) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 3
    assert [a.status_code for a in delivery.attempt_log.all()] == [503, 503, 200]
    assert WebhookEndpoint.objects.get().failing_since is None  # forgiven by the success


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_retry_after_delays_the_next_attempt_in_seconds_or_as_a_date(
    user, receiver, webhook_settings, as_date
):
    two_hours = 7200
    retry_after = http_date(time.time() + two_hours) if as_date else str(two_hours)
    receiver.answer = lambda seen, _: (503, {"Retry-After": retry_after}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(attempts=1).exists())

    delivery = WebhookDelivery.objects.get()
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert delivery.status == "pending"
    # Not the schedule's 5 s: the receiver's two hours (a date has whole seconds).
    assert two_hours - 60 < wait <= two_hours + 1
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # a date past: at once
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # RFC 850, which RFC 9110 still accepts
        ("in a while", None),
        ("-5", None),
        ("nan", None),
        ("1e400", 24 * 3600.0),  # at most a day
    ],
)
def test_retry_after_header_is_read_as_rfc_9110_says(header, seconds):
    assert _retry_after(header) == seconds


def test_two_senders_at_once_never_take_the_same_delivery(user, receiver, webhook_settings):
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    for _ in range(30):
        _finish_one(user)
    events_make_for_finished()
    assert WebhookDelivery.objects.count() == 30
    start = threading.Barrier(2)

    def claim() -> list:
        start.wait()
        try:
            return [claimed.delivery.pk for claimed in deliveries_claim_due(limit=20)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda _: claim(), range(2))

    assert not set(first) & set(second)
    assert len(first) + len(second) == 30
    assert deliveries_claim_due(limit=20) == []  # all taken, for their lease


def test_a_delivery_that_fails_every_attempt_ends_failed(user, receiver, webhook_settings):
    receiver.answer = lambda seen, _: (500, {}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="failed").exists())
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == len(webhook_settings.WEBHOOKS_RETRY_SCHEDULE)
    assert delivery.last_error == "The endpoint answered HTTP 500."

    receiver.answer = None
    delivery_redeliver(delivery=delivery)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())
    assert len(receiver.ids()) == 1  # the same event, the same webhook-id


def test_a_redirect_is_a_failure_and_is_not_followed(user, receiver, webhook_settings):
    receiver.answer = lambda seen, _: (302, {"Location": "http://169.254.169.254/"}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="failed").exists())
    assert {a.status_code for a in WebhookDelivery.objects.get().attempt_log.all()} == {302}


def test_410_disables_the_endpoint(user, receiver, webhook_settings):
    receiver.answer = lambda seen, _: (410, {}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(
        lambda: WebhookEndpoint.objects.filter(status=EndpointStatus.DISABLED).exists()
    )
    endpoint = WebhookEndpoint.objects.get()
    assert "410" in endpoint.disabled_reason
    # What was still due for it ends failed, unsent.
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="failed").exists())
    assert len(receiver.requests) == 1


def test_an_endpoint_failing_for_too_long_is_disabled(user, receiver, webhook_settings):
    webhook_settings.WEBHOOKS_DISABLE_AFTER_SECONDS = 0
    receiver.answer = lambda seen, _: (500, {}, 0)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(
        lambda: WebhookEndpoint.objects.filter(status=EndpointStatus.DISABLED).exists()
    )
    assert "failed for" in WebhookEndpoint.objects.get().disabled_reason


def test_a_slow_receiver_times_out(user, receiver, webhook_settings):
    webhook_settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5
    webhook_settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    receiver.answer = lambda seen, _: (200, {}, 2)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="failed").exists())
    [attempt] = WebhookDelivery.objects.get().attempt_log.all()
    assert attempt.status_code is None
    assert "did not answer in time" in attempt.error or "timed out" in attempt.error
    assert attempt.duration_ms < 1900


def test_a_private_address_is_never_reached(user, receiver, webhook_settings):
    # Registered while loopback was allowed, then the allowlist is emptied: each attempt
    # checks the address again.
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    webhook_settings.WEBHOOKS_URL_ALLOWLIST = []
    webhook_settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED).exists())
    assert receiver.requests == []
    [attempt] = WebhookDelivery.objects.get().attempt_log.all()
    assert "private or reserved" in attempt.error


def test_an_unexpected_error_fails_an_attempt_not_the_sender(
    user, receiver, webhook_settings, monkeypatch
):
    from webhooks import sending

    real_open = sending.open_pinned
    calls = []

    def open_failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a library")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(sending, "open_pinned", open_failing_once)
    endpoint_create(owner=user, url=receiver.url, event_types=[])
    _finish_one(user)
    _run_sender_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists())
    first, second = WebhookDelivery.objects.get().attempt_log.all()
    assert "RuntimeError: a bug in a library" in first.error
    assert second.status_code == 200
