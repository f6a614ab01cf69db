"""Read paths of webhooks. Every read by a user is narrowed to what they own: another
user's ids are not found (404), never forbidden."""

import uuid

from django.db.models import QuerySet

from webhooks.models import WebhookDelivery, WebhookEndpoint


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def endpoint_list_for_user(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=user).order_by("-created_at", "-id")


def endpoint_get_for_user(*, user, endpoint_id) -> WebhookEndpoint | None:
    pk = _uuid(endpoint_id)
    return None if pk is None else endpoint_list_for_user(user=user).filter(pk=pk).first()


def delivery_list_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at", "-id")
    )


def delivery_list_for_user(*, user) -> QuerySet[WebhookDelivery]:
    """The user's deliveries, to endpoints and to task callbacks alike."""
    return (
        WebhookDelivery.objects.filter(event__owner=user)
        .select_related("event")
        .order_by("-created_at", "-id")
    )


def delivery_get_for_user(*, user, delivery_id) -> WebhookDelivery | None:
    pk = _uuid(delivery_id)
    if pk is None:
        return None
    return delivery_list_for_user(user=user).prefetch_related("attempt_log").filter(pk=pk).first()


def callback_deliveries_for_user(*, user, limit: int) -> list[WebhookDelivery]:
    """The user's latest deliveries to their tasks' callback URLs, newest first."""
    return list(
        WebhookDelivery.objects.filter(event__owner=user, endpoint__isnull=True)
        .select_related("event")
        .order_by("-created_at", "-id")[:limit]
    )
