from django.db import models
from django.utils import timezone


class PoolStall(models.Model):
    """A task handed to a pool process that did not start it in time: the process was wedged.

    Written by the worker's watchdog (pool_watchdog.py) when it replaces such a process; the
    health view counts them. The task itself is not lost: it runs on another process.
    """

    detected_at = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=255, help_text="The worker (node name) of the pool.")
    pid = models.PositiveIntegerField(null=True, blank=True, help_text="The stuck process.")
    task_id = models.CharField(max_length=255, help_text="The task it had not started.")
    task_type = models.CharField(max_length=100, blank=True)
    waited_seconds = models.FloatField()
    action = models.CharField(
        max_length=100, help_text="What the watchdog did: the process replaced, the task moved."
    )

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["detected_at"], name="poolstall_detected")]

    def __str__(self) -> str:
        return f"{self.worker} pid {self.pid}: {self.task_type} {self.task_id}"
