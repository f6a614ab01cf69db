"""Write paths of webhooks: endpoints (create, change, rotate, delete), deliveries (claim
the due ones, record an attempt, redeliver)."""

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from documents.processing import UrlNotAllowed
from documents.processing.addresses import check_addresses, parse_url
from webhooks.errors import EndpointLimitReached, WebhookUrlNotAllowed
from webhooks.models import (
    CallbackSecret,
    DeliveryStatus,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_secret,
)
from webhooks.sending import Outcome

logger = logging.getLogger(__name__)

# Jitter on each retry's delay, as a share of it: deliveries that failed together (an
# endpoint's outage) do not all come back in the same second.
RETRY_JITTER = 0.1
# How long a claimed attempt may take before it is taken for lost (its sender died) and
# made again, beyond its own time limit.
LEASE_MARGIN_SECONDS = 30.0
GONE = 410


def webhook_url_check(url: str) -> str:
    """The URL, stripped, if webhooks may be sent to it; else WebhookUrlNotAllowed.

    No DNS lookup here: each attempt resolves the host and checks every address it gets.
    """
    try:
        target = parse_url(url)
        if target.address is not None:
            check_addresses(
                target, [target.address], allowlist=tuple(settings.WEBHOOKS_URL_ALLOWLIST)
            )
    except UrlNotAllowed as error:
        raise WebhookUrlNotAllowed(str(error)) from None
    return target.url


@transaction.atomic
def endpoint_create(
    *, owner: AbstractBaseUser, url: str, description: str = "", event_types: list[str]
) -> WebhookEndpoint:
    """Register where ``owner``'s events go. Its secret is in the returned endpoint."""
    url = webhook_url_check(url)
    # The owner's row is locked, so two requests at once cannot both pass the count.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    limit = settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER
    if WebhookEndpoint.objects.filter(owner=owner).count() >= limit:
        raise EndpointLimitReached(limit=limit)
    endpoint = WebhookEndpoint.objects.create(
        owner=owner, url=url, description=description, event_types=sorted(set(event_types))
    )
    logger.info("webhook endpoint created id=%s owner=%s", endpoint.pk, owner.pk)
    return endpoint


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    description: str | None = None,
    event_types: list[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    fields = {}
    if url is not None:
        fields["url"] = webhook_url_check(url)
    if description is not None:
        fields["description"] = description
    if event_types is not None:
        fields["event_types"] = sorted(set(event_types))
    if fields:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**fields)
    if enabled is True:
        # Enabled again by its owner: its failures so far are forgiven.
        WebhookEndpoint.objects.transition(
            pk=endpoint.pk, to=EndpointStatus.ENABLED, disabled_reason="", failing_since=None
        )
    elif enabled is False:
        WebhookEndpoint.objects.transition(
            pk=endpoint.pk, to=EndpointStatus.DISABLED, disabled_reason="Disabled by its owner."
        )
    endpoint.refresh_from_db()
    return endpoint


def secret_rotate(*, holder: WebhookEndpoint | CallbackSecret) -> WebhookEndpoint | CallbackSecret:
    """A new secret; the one it replaces still signs for WEBHOOKS_SECRET_ROTATION_SECONDS."""
    holder.previous_secret = holder.secret
    holder.previous_secret_expires_at = timezone.now() + timedelta(
        seconds=settings.WEBHOOKS_SECRET_ROTATION_SECONDS
    )
    holder.secret = new_secret()
    holder.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return holder


def callback_secret_for(*, owner: AbstractBaseUser) -> CallbackSecret:
    return CallbackSecret.objects.get_or_create(owner=owner)[0]


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries; nothing more is sent to it."""
    endpoint.delete()


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a finished delivery again, now, with a fresh schedule of attempts (the same
    ``webhook-id``: a receiver that has it already drops it)."""
    WebhookDelivery.objects.transition(
        pk=delivery.pk, to=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), attempts=0
    )
    delivery.refresh_from_db()
    return delivery


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: WebhookDelivery
    secrets: list[str]  # empty: its endpoint is disabled, do not send


def deliveries_claim_due(*, limit: int) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for sending: each is due again only once its
    attempt's time and a margin have passed (the attempt is then taken for lost)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
    # Two statements, whatever ``limit``: the due rows are locked as read (PostgreSQL skips
    # those another sender holds; SQLite's write lock serializes), then moved past the lease.
    with transaction.atomic():
        due = WebhookDelivery.objects.due(now).order_by("next_attempt_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        claimed = list(due.values_list("pk", flat=True)[:limit])
        WebhookDelivery.objects.filter(pk__in=claimed).update(next_attempt_at=now + lease)
    deliveries = WebhookDelivery.objects.filter(pk__in=claimed).select_related("event", "endpoint")
    owners_with_callbacks = {d.event.owner_id for d in deliveries if d.endpoint_id is None}
    callback_secrets = {
        secret.owner_id: secret
        for secret in CallbackSecret.objects.filter(owner_id__in=owners_with_callbacks)
    }
    result = []
    for delivery in deliveries:
        if delivery.endpoint is None:
            holder = callback_secrets.get(delivery.event.owner_id)
            secrets = holder.signing_secrets(now) if holder else []
        elif delivery.endpoint.status == EndpointStatus.ENABLED:
            secrets = delivery.endpoint.signing_secrets(now)
        else:
            secrets = []
        result.append(ClaimedDelivery(delivery=delivery, secrets=secrets))
    return result


def delivery_give_up(*, delivery: WebhookDelivery, reason: str) -> None:
    WebhookDelivery.objects.transition(
        pk=delivery.pk,
        to=DeliveryStatus.FAILED,
        last_error=reason[:500],
        finished_at=timezone.now(),
    )


@transaction.atomic
def delivery_record_attempt(
    *, delivery: WebhookDelivery, outcome: Outcome, attempted_at
) -> WebhookDelivery:
    """Log an attempt, then end the delivery (a 2xx, or the schedule ran out) or schedule
    its next attempt; keep the endpoint's failing time, and disable an endpoint that
    answered 410 or has failed for WEBHOOKS_DISABLE_AFTER_SECONDS."""
    number = delivery.attempts + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        attempted_at=attempted_at,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        response_body=outcome.response_body,
    )
    now = timezone.now()
    common = {
        "attempts": number,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error or _status_error(outcome.status_code),
    }
    if outcome.succeeded:
        WebhookDelivery.objects.transition(
            pk=delivery.pk, to=DeliveryStatus.SUCCEEDED, finished_at=now, **common
        )
        if delivery.endpoint_id is not None:
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).exclude(
                failing_since=None
            ).update(failing_since=None)
        return delivery
    delay = _next_delay(number, retry_after=outcome.retry_after)
    if delay is None:
        WebhookDelivery.objects.transition(
            pk=delivery.pk, to=DeliveryStatus.FAILED, finished_at=now, **common
        )
    else:
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            next_attempt_at=now + timedelta(seconds=delay), **common
        )
    if delivery.endpoint_id is not None:
        _endpoint_failed(delivery.endpoint_id, status_code=outcome.status_code, now=now)
    return delivery


def _status_error(status_code: int | None) -> str:
    if status_code is None or 200 <= status_code < 300:
        return ""
    return f"The endpoint answered HTTP {status_code}."


def _next_delay(attempts_made: int, *, retry_after: float | None) -> float | None:
    """Seconds until the next attempt, or None when the schedule has run out."""
    schedule = settings.WEBHOOKS_RETRY_SCHEDULE
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made] * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)  # noqa: S311
    return max(delay, retry_after or 0.0)


def _endpoint_failed(endpoint_id, *, status_code: int | None, now) -> None:
    if status_code == GONE:
        reason = "It answered 410 Gone: the receiver asked for no more events."
    else:
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since=None).update(failing_since=now)
        failing_for = timedelta(seconds=settings.WEBHOOKS_DISABLE_AFTER_SECONDS)
        if not WebhookEndpoint.objects.filter(
            pk=endpoint_id, failing_since__lte=now - failing_for
        ).exists():
            return
        reason = f"Every attempt to it failed for {_duration(failing_for)}."
    if WebhookEndpoint.objects.transition(
        pk=endpoint_id, to=EndpointStatus.DISABLED, disabled_reason=reason
    ):
        logger.warning("webhook endpoint disabled id=%s: %s", endpoint_id, reason)


def _duration(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def events_prune(*, older_than, batch_size: int = 1000) -> int:
    """Delete events made before ``older_than`` with their deliveries and attempts, in
    batches (each its own short transaction), except those with a delivery still pending."""
    deleted = 0
    while True:
        ids = list(
            WebhookEvent.objects.filter(created_at__lt=older_than)
            .exclude(deliveries__status=DeliveryStatus.PENDING)
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        WebhookEvent.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
