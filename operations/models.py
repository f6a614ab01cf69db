from django.db import models
from django.utils import timezone


class HealthStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    CRITICAL = "critical", "Critical"
    UNKNOWN = "unknown", "Unknown"


class HealthSnapshot(models.Model):
    """The service's health as a beat job saw it: kept for a while, to show the history."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=20, choices=HealthStatus.choices)
    # [{"check": "failure_rate", "status": "critical", "message": "...", "numbers": {...}}]
    reasons = models.JSONField(default=list, blank=True)
    # When staff were told about this snapshot (a transition to critical), if they were.
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.status}"


class MaintenanceRun(models.Model):
    """One run of a maintenance job: what it did, or why it did nothing."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped (another run held the lock)"
        FAILED = "failed", "Failed"

    job = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    # What the job counted: {"deleted": 120, "batches": 3}
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job", "-started_at"], name="maintenance_job_started")]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} {self.outcome}"


class MaintenanceLock(models.Model):
    """A row per job, held while the job runs, so two runs of one job never overlap."""

    job = models.CharField(max_length=100, primary_key=True)
    held_until = models.DateTimeField(null=True, blank=True)
    holder = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return self.job
