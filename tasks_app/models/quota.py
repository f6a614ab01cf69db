from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class TaskQuota(models.Model):
    """One user's own limits, where the defaults (TASKS_MAX_*_PER_USER) do not fit. Set by staff."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="task_quota",
    )
    max_active = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Unfinished tasks (waiting, queued, running, retrying) past which a submit "
        "answers 429. Empty: TASKS_MAX_ACTIVE_PER_USER.",
    )
    max_running = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Tasks queued, running or retrying at once; the rest wait without a broker "
        "message. Empty: TASKS_MAX_RUNNING_PER_USER.",
    )

    def __str__(self) -> str:
        return f"task quota of {self.user}"
