"""tasks_app's models, one module each; imported here, where Django and the code look for them."""

from tasks_app.models.credentials import ApiKey, UserToken
from tasks_app.models.dead_letter import DeadLetter
from tasks_app.models.diagnostic_counter import DiagnosticCounter
from tasks_app.models.pool_stall import PoolStall
from tasks_app.models.quota import TaskQuota
from tasks_app.models.state_machine import TransitionQuerySet
from tasks_app.models.task_batch import TaskBatch
from tasks_app.models.task_record import (
    ACTIVE_STATUSES,
    DISPATCHED_STATUSES,
    FINAL_STATUSES,
    TRANSITIONS,
    TaskRecord,
    TaskRecordQuerySet,
    TaskStatus,
)
from tasks_app.models.workflow import Workflow, WorkflowStatus

__all__ = [
    "ACTIVE_STATUSES",
    "DISPATCHED_STATUSES",
    "FINAL_STATUSES",
    "TRANSITIONS",
    "ApiKey",
    "DeadLetter",
    "DiagnosticCounter",
    "PoolStall",
    "TaskBatch",
    "TaskQuota",
    "TaskRecord",
    "TaskRecordQuerySet",
    "TaskStatus",
    "TransitionQuerySet",
    "UserToken",
    "Workflow",
    "WorkflowStatus",
]
