"""The task record: one row per task, the truth about it, and its one state machine."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from tasks_app.models.state_machine import TransitionQuerySet


class TaskStatus(models.TextChoices):
    """Where a task record is in its life. The allowed moves are in ``TRANSITIONS``.

    waiting    committed, but its owner already has TASKS_MAX_RUNNING_PER_USER tasks queued,
               running or retrying: it has no broker message until one of those finishes
               (tasks_app/admission.py), so one user's backlog cannot fill every worker.
    queued     committed and handed (or about to be handed) to the broker; nobody runs it yet.
               A running task whose worker died comes back here to be delivered again.
    running    a worker claimed it and runs the body, and heartbeats while it does.
    retrying   the body raised a transient error; a later attempt is scheduled.
    succeeded  the body returned; ``result`` holds what it returned.       (final)
    failed     a permanent error, or the retries ran out; ``error_*`` say why. (final)
    cancelled  the owner or staff cancelled it; it will not run (again).    (final)
    timed_out  it ran past its time limit and was stopped.                 (final)
    """

    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"


# The one state machine: from each status, where a record may go next. Every write of
# ``status`` is a conditional update built from this table (TaskRecord.objects.transition).
TRANSITIONS: dict[str, frozenset[str]] = {
    # Admitted to a slot of its owner's (queued); or cancelled, or failed, before that.
    TaskStatus.WAITING: frozenset({TaskStatus.QUEUED, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.QUEUED,  # its worker died: deliver it again (tasks_recover_stale)
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.RETRYING,
            TaskStatus.CANCELLED,
            TaskStatus.TIMED_OUT,
        }
    ),
    TaskStatus.RETRYING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
    TaskStatus.TIMED_OUT: frozenset(),
}

FINAL_STATUSES = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
ACTIVE_STATUSES = frozenset(TaskStatus.values) - FINAL_STATUSES
# Active records that hold a broker message (or a worker): the ones a user's running limit counts.
DISPATCHED_STATUSES = ACTIVE_STATUSES - {TaskStatus.WAITING}


# Which finished records are to be announced (``announce_finishes_where``): None, none.
_announce_when: models.Expression | None = None


def announce_finishes_where(condition: models.Q) -> None:
    """Mark each record that moves to a final status and matches ``condition`` as one to
    announce (``announce_pending``), in the move's own statement.

    An app above this one that tells others of finished tasks (webhooks) registers its
    condition in its ``AppConfig.ready()``, an ``Exists`` on its own tables naming the
    record with ``OuterRef``, and reads the marked records (``announcements.py``). The mark
    commits or rolls back with the move: a finish that rolled back is never announced, and
    one that committed is announced even if the worker dies the next instant.
    """
    global _announce_when  # noqa: PLW0603 - set once, from AppConfig.ready()
    # One instance for every move: compiled moves are cached by their expressions.
    _announce_when = models.Case(
        models.When(condition, then=models.Value(True)),
        default=models.Value(False),
        output_field=models.BooleanField(),
    )


class TaskRecordQuerySet(TransitionQuerySet):
    transitions = TRANSITIONS

    # Every move is a change its owner's event stream shows (tasks_app/events.py).
    def transition(self, *, pk, to: str, only_if=None, **fields) -> bool:
        return super().transition(pk=pk, to=to, only_if=only_if, **_changed_now(to, fields))

    def transition_returning(self, *, pk, to: str, **options):
        return super().transition_returning(pk=pk, to=to, **_changed_now(to, options))

    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def finished(self):
        return self.filter(status__in=FINAL_STATUSES)

    def running(self):
        return self.filter(status=TaskStatus.RUNNING)

    def outbox(self):
        """Committed queued records whose broker message is not sent yet (dispatch.py)."""
        return self.filter(status=TaskStatus.QUEUED, dispatched_at__isnull=True)


def _changed_now(to: str, fields: dict) -> dict:
    if _announce_when is not None and to in FINAL_STATUSES:
        return {"changed_at": timezone.now(), "announce_pending": _announce_when, **fields}
    return {"changed_at": timezone.now(), **fields}


# A task type's priority unless it says otherwise (0 lowest, 9 most urgent).
DEFAULT_PRIORITY = 5


class TaskRecord(models.Model):
    """One submitted task: who owns it, what it runs, and how far it got.

    The primary key is also the Celery task id, so one id serves the API, Celery,
    the django-celery-results row and the logs.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="task_records",
        # No index of its own: task_owner_created starts with the owner and serves it.
        db_index=False,
    )
    task_type = models.CharField(max_length=100)
    queue = models.CharField(max_length=100)
    priority = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(9)], help_text="0 (lowest) to 9 (most urgent)."
    )
    status = models.CharField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.QUEUED)
    # Dates and decimals in a validated input are stored as their JSON text forms.
    input = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    progress_current = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True)

    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)

    attempts = models.PositiveIntegerField(default=0)
    # One entry per failed attempt: {"attempt", "error_type", "error_message", "traceback", "at"}.
    error_history = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    worker = models.CharField(max_length=255, blank=True, help_text="Worker that ran it last.")
    requeued_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="requeues",
        help_text="The dead task this one is a new attempt of.",
    )

    # Idempotency-Key of the submission, with a digest of what was submitted under it.
    # NULL, not "", for no key: the unique constraint must not treat "" as a used key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a retrying task's next attempt is due."
    )
    # Set by every write its owner would see (status, progress; not heartbeats, not the
    # relay's dispatched_at): what the event stream follows.
    changed_at = models.DateTimeField(
        default=timezone.now, help_text="When its status or progress last changed."
    )
    # A step of a workflow (tasks_app/workflows.py): which one, and under which name.
    workflow = models.ForeignKey(
        "tasks_app.Workflow",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="step_records",
    )
    workflow_step = models.CharField(max_length=100, blank=True)
    # Where to announce its end, besides its owner's webhook endpoints (webhooks app).
    callback_url = models.CharField(max_length=2000, blank=True)
    # Finished, and not yet announced to whoever registered for it (announce_finishes_where).
    announce_pending = models.BooleanField(default=False)

    objects = TaskRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # "My tasks, newest first", optionally narrowed by status or type. Each list
            # page reads one of these in order (the id breaks ties of created_at).
            models.Index(fields=["owner", "-created_at"], name="task_owner_created"),
            models.Index(fields=["owner", "status", "-created_at"], name="task_owner_status"),
            models.Index(fields=["owner", "task_type", "-created_at"], name="task_owner_type"),
            # The owner's event stream: what changed since a moment (tasks_app/events.py).
            models.Index(fields=["owner", "changed_at"], name="task_owner_changed"),
            # Staff's list of every task, newest first (without it, a sort of all records).
            models.Index(fields=["-created_at", "-id"], name="task_created"),
            # Staff lists by status and the sweeps (queued too long, running without heartbeat).
            models.Index(fields=["status", "created_at"], name="task_status_created"),
            # Health's failure rate over a recent window, metrics, and retention.
            models.Index(fields=["status", "finished_at"], name="task_status_finished"),
            # The relay's outbox: small, since a row leaves it once its message is sent.
            models.Index(
                fields=["created_at"],
                name="task_outbox",
                condition=models.Q(status="queued", dispatched_at__isnull=True),
            ),
            # Finished records to announce: small, since a row leaves it once announced.
            models.Index(
                fields=["finished_at"],
                name="task_announce",
                condition=models.Q(announce_pending=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=TaskStatus.values), name="task_status_valid"
            ),
            models.CheckConstraint(condition=models.Q(priority__lte=9), name="task_priority_0_9"),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="task_owner_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_type} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def progress(self) -> dict:
        """Progress as the API shows it, for tasks and for what they process."""
        return {
            "current": self.progress_current,
            "total": self.progress_total,
            "percent": self.progress_percent,
            "message": self.progress_message,
        }

    @property
    def progress_percent(self) -> float | None:
        if not self.progress_total:
            return None
        return round(min(100.0, 100.0 * self.progress_current / self.progress_total), 1)
