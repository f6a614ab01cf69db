"""Webhook endpoints, the events made for them, and each event's delivery to each endpoint.

Each stateful model has its table of moves (``ENDPOINT_TRANSITIONS``,
``DELIVERY_TRANSITIONS``) and changes status only through ``transition()``.
"""

import base64
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tasks_app.models import TransitionQuerySet


class EventType(models.TextChoices):
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"
    TASK_TIMED_OUT = "task.timed_out"
    DOCUMENT_COMPLETED = "document.completed"
    DOCUMENT_FAILED = "document.failed"
    WORKFLOW_SUCCEEDED = "workflow.succeeded"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_CANCELLED = "workflow.cancelled"


def new_secret() -> str:
    """A signing secret in Standard Webhooks' form: ``whsec_`` and 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class EndpointStatus(models.TextChoices):
    """enabled: events are sent to it. disabled: by its owner, or by us after it answered 410
    or kept failing (``disabled_reason``); its owner enables it again."""

    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


ENDPOINT_TRANSITIONS: dict[str, frozenset[str]] = {
    EndpointStatus.ENABLED: frozenset({EndpointStatus.DISABLED}),
    EndpointStatus.DISABLED: frozenset({EndpointStatus.ENABLED}),
}


class WebhookEndpointQuerySet(TransitionQuerySet):
    transitions = ENDPOINT_TRANSITIONS


class SigningSecret(models.Model):
    """A secret that may be rotated with the old one valid for a while: during that time
    each delivery carries a signature made with each (Standard Webhooks' zero-downtime
    rotation)."""

    secret = models.CharField(max_length=100, default=new_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets a delivery is signed with now: the current one first."""
        now = now or timezone.now()
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and (self.previous_secret_expires_at > now)
        ):
            return [self.secret, self.previous_secret]
        return [self.secret]


class WebhookEndpoint(SigningSecret):
    """Where a user wants events sent, and which ones (every type when ``event_types`` is
    empty)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=20, choices=EndpointStatus.choices, default=EndpointStatus.ENABLED
    )
    disabled_reason = models.CharField(max_length=300, blank=True)
    # Since when every attempt to it has failed; None after a success.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A finish asks whether its owner has an enabled endpoint (apps.py).
            models.Index(fields=["owner", "status"], name="webhook_endpoint_owner"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=EndpointStatus.values),
                name="webhook_endpoint_status_valid",
            )
        ]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class CallbackSecret(SigningSecret):
    """The secret that signs a user's per-task callbacks (a submit's ``callback_url``)."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_callback_secret"
    )

    def __str__(self) -> str:
        return f"callback secret of {self.owner_id}"


class WebhookEvent(models.Model):
    """Something that happened, as sent: its ``id`` is every delivery's ``webhook-id``
    (the receiver's key to drop duplicates) and ``payload`` the exact body."""

    id = models.CharField(primary_key=True, max_length=40)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_events"
    )
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    task_id = models.UUIDField(
        null=True,
        blank=True,
        help_text="The task whose end this is (not a key: tasks are pruned).",
    )
    workflow_id = models.UUIDField(
        null=True, blank=True, help_text="The workflow whose move this is (workflow.* events)."
    )
    payload = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"], name="webhook_event_created")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"

    @staticmethod
    def new_id() -> str:
        return f"msg_{uuid.uuid4().hex}"


class DeliveryStatus(models.TextChoices):
    """pending: an attempt is due at ``next_attempt_at``. succeeded: a 2xx answer.
    failed: every attempt of the schedule failed, or its endpoint was disabled.
    A manual redelivery takes a finished delivery back to pending."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


DELIVERY_TRANSITIONS: dict[str, frozenset[str]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}),
    DeliveryStatus.SUCCEEDED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.FAILED: frozenset({DeliveryStatus.PENDING}),
}


class WebhookDeliveryQuerySet(TransitionQuerySet):
    transitions = DELIVERY_TRANSITIONS

    def due(self, now):
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint (or to a task's ``callback_url``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        help_text="None for a task's callback_url.",
    )
    url = models.CharField(max_length=2000)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; while one is in flight, when it is given up as lost
    # (its sender died) and made again.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The sender's queue: small, since a delivery leaves it when it ends.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="webhook_delivery_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.url} ({self.status})"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the receiver answered, and how long it took."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=500, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}: {self.status_code or self.error}"
