import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tasks_app.models.state_machine import TransitionQuerySet
from tasks_app.models.task_record import TaskRecord, TaskStatus


class DeadLetterResolution(models.TextChoices):
    """What staff did with a dead letter: open until requeued or discarded, once."""

    OPEN = "open", "Open"
    REQUEUED = "requeued", "Requeued"
    DISCARDED = "discarded", "Discarded"


RESOLUTION_TRANSITIONS: dict[str, frozenset[str]] = {
    DeadLetterResolution.OPEN: frozenset(
        {DeadLetterResolution.REQUEUED, DeadLetterResolution.DISCARDED}
    ),
    DeadLetterResolution.REQUEUED: frozenset(),
    DeadLetterResolution.DISCARDED: frozenset(),
}


class DeadLetterQuerySet(TransitionQuerySet):
    transitions = RESOLUTION_TRANSITIONS
    status_field = "resolution"


class DeadLetter(models.Model):
    """A task that will not succeed on its own: its retries ran out, or it failed for good.

    Kept with everything needed to judge and retry it. Staff requeue it (a new task,
    linked to the original) or discard it; old entries are pruned after a retention time.
    """

    Resolution = DeadLetterResolution

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.OneToOneField(TaskRecord, on_delete=models.CASCADE, related_name="dead_letter")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dead_letters"
    )
    task_type = models.CharField(max_length=100)
    input = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    final_status = models.CharField(max_length=20, choices=TaskStatus.choices)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    task_created_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    resolution = models.CharField(
        max_length=20, choices=Resolution.choices, default=Resolution.OPEN
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    requeued_task = models.ForeignKey(
        TaskRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = DeadLetterQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["resolution", "-created_at"], name="deadletter_resolution"),
            models.Index(fields=["task_type", "-created_at"], name="deadletter_type"),
            models.Index(fields=["created_at"], name="deadletter_created"),
        ]

    def __str__(self) -> str:
        return f"{self.task_type} {self.task_id} ({self.resolution})"
