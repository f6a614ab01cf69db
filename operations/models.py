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
    # What the service did since the snapshot before, for the staff page's charts
    # (operations/history.py): {"seconds": since the one before, "finished": n,
    # "failed": n (failed or timed out), "p95_seconds": {task type: s},
    # "queue_depths": {queue: n or None}}. Empty in snapshots from before it was kept.
    figures = models.JSONField(default=dict, blank=True)

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


class TaskTally(models.Model):
    """Finished task records of one task type and final status that finished before the
    mark (``TaskTallyMark``), counted: they stay counted when retention deletes them.

    The Prometheus counters are this plus the records finished since the mark
    (operations/tallies.py). Written only while the mark's row is locked.
    """

    task_type = models.CharField(max_length=100)
    status = models.CharField(max_length=20)
    count = models.PositiveBigIntegerField(default=0)
    # Of the succeeded ones with a start and a finish: how many, how long they ran in all,
    # and how many ran at most each bucket's seconds ({"0.1": 3, "0.5": 7, …}, cumulative).
    timed_count = models.PositiveBigIntegerField(default=0)
    duration_seconds_sum = models.FloatField(default=0.0)
    duration_buckets = models.JSONField(default=dict, blank=True)
    # Of those that started once: how many, how long they waited from submission to start
    # in all, and how many waited at most each bucket's seconds (cumulative).
    started_count = models.PositiveBigIntegerField(default=0)
    start_latency_seconds_sum = models.FloatField(default=0.0)
    start_latency_buckets = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_type", "status"], name="task_tally_type_status")
        ]

    def __str__(self) -> str:
        return f"{self.task_type} {self.status}: {self.count}"


class TaskTallyMark(models.Model):
    """How far ``TaskTally`` has counted: the records finished before ``counted_until``.

    One row (id 1); its lock is what keeps two advances, or an advance and a read, apart.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    # None: nothing counted yet; every finished record is still to count.
    counted_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="task_tally_mark_one")]

    def __str__(self) -> str:
        return f"tasks counted until {self.counted_until}"
