import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tasks_app.models.state_machine import TransitionQuerySet


class WorkflowStatus(models.TextChoices):
    """Where a workflow is. The allowed moves are in ``WORKFLOW_TRANSITIONS``.

    running    a stage's tasks are queued or running.
    succeeded  every stage succeeded; ``result`` is the last stage's.            (final)
    failed     a step failed (``failed_step``, with its dead letter); requeueing that
               dead letter runs the step again and the workflow goes on from it.
    cancelled  its owner cancelled it, or one of its tasks; what had not finished was
               cancelled too.                                                   (final)
    """

    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


WORKFLOW_TRANSITIONS: dict[str, frozenset[str]] = {
    WorkflowStatus.RUNNING: frozenset(
        {WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
    ),
    WorkflowStatus.FAILED: frozenset({WorkflowStatus.RUNNING, WorkflowStatus.CANCELLED}),
    WorkflowStatus.SUCCEEDED: frozenset(),
    WorkflowStatus.CANCELLED: frozenset(),
}


# The moves another app may be told of (``announce_workflow_moves_where``): the ends, and
# a failure, after which the workflow waits for its failed step to be requeued.
ANNOUNCED_STATUSES = frozenset(
    {WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)

# Which of those moves are to be announced: None, none.
_announce_when: models.Expression | None = None


def announce_workflow_moves_where(condition: models.Q) -> None:
    """Mark each workflow that moves to one of ANNOUNCED_STATUSES and matches ``condition``
    as one to announce (``announce_pending``), in the move's own statement: as
    ``task_record.announce_finishes_where`` does for tasks, whose docstring says why."""
    global _announce_when  # noqa: PLW0603 - set once, from AppConfig.ready()
    _announce_when = models.Case(
        models.When(condition, then=models.Value(True)),
        default=models.Value(False),
        output_field=models.BooleanField(),
    )


class WorkflowQuerySet(TransitionQuerySet):
    transitions = WORKFLOW_TRANSITIONS

    def transition(self, *, pk, to: str, only_if=None, **fields) -> bool:
        if _announce_when is not None and to in ANNOUNCED_STATUSES:
            fields["announce_pending"] = _announce_when
        return super().transition(pk=pk, to=to, only_if=only_if, **fields)


class Workflow(models.Model):
    """Tasks run in stages: each stage one task (a chain's step) or several at once (a
    group); a stage starts when the one before succeeded, its input taking the results it
    names. Each step is a task record of its own (``TaskRecord.workflow``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows"
    )
    name = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING
    )
    # The validated definition: [{"name", "group": bool, "steps": [{"name", "task_type",
    # "input", "input_from", "priority"}]}] (tasks_app/workflows.py).
    stages = models.JSONField(encoder=DjangoJSONEncoder)
    current_stage = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField()
    steps_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    failed_step = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Its last move (to succeeded, failed or cancelled) is still to be announced (webhooks).
    announce_pending = models.BooleanField(default=False)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="workflow_owner_created"),
            # Moves to announce: small, since a row leaves it once announced.
            models.Index(
                fields=["created_at"],
                name="workflow_announce",
                condition=models.Q(announce_pending=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=WorkflowStatus.values), name="workflow_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"workflow {self.name or self.id} ({self.status})"

    @property
    def progress(self) -> dict:
        return {"steps_done": self.steps_done, "steps_total": self.steps_total}
