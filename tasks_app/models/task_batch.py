"""A batch submission: the tasks one request created, in order, and its Idempotency-Key."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TaskBatch(models.Model):
    """What ``POST /api/v1/tasks/batch`` created, so a repeated Idempotency-Key can answer
    with the same tasks. Each task is an ordinary ``TaskRecord``; this row only lists them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="task_batches"
    )
    # The ids of its task records, in the order of the request's items.
    task_ids = models.JSONField(default=list)
    # As on TaskRecord: NULL, not "", for no key, so that the unique constraint ignores it.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="task_batch_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="task_batch_owner_idempotency_key",
            )
        ]
        verbose_name_plural = "task batches"

    def __str__(self) -> str:
        return f"batch {self.id} ({len(self.task_ids)} tasks)"
