"""A task record as Django's Tasks API sees it: a ``TaskResult`` (django-tasks).

``tasks_backend.PipelineBackend`` answers ``enqueue()`` and ``get_result()`` with these. Our
statuses map onto Django's four; the errors of the record's attempts become ``TaskError``s;
the function's return value is the record's ``result["return_value"]``.
"""

import builtins
import re

from django_tasks import TaskResult, TaskResultStatus
from django_tasks.base import Task, TaskError

from tasks_app.models import TaskRecord, TaskStatus

STATUS_OF = {
    TaskStatus.WAITING: TaskResultStatus.READY,
    TaskStatus.QUEUED: TaskResultStatus.READY,
    TaskStatus.RETRYING: TaskResultStatus.READY,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
    TaskStatus.TIMED_OUT: TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: TaskResultStatus.FAILED,
}

# Errors the pipeline records with no traceback of their own, by their class's module path.
_RECORDED_ERRORS = {
    "TaskCancelled": "tasks_app.errors.TaskCancelled",
    "TimeLimitExceeded": "celery.exceptions.TimeLimitExceeded",
    "WorkerLostError": "billiard.exceptions.WorkerLostError",
    "WorkerLost": "billiard.exceptions.WorkerLostError",
}
# A traceback names the exception's class as Python prints it, on the line of the message.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)", re.MULTILINE)


def task_result_of(*, task: Task, record: TaskRecord, backend: str) -> TaskResult:
    """The ``TaskResult`` of ``record``, which runs ``task``."""
    result = TaskResult(
        task=task,
        id=str(record.pk),
        status=STATUS_OF[record.status],
        enqueued_at=record.created_at,
        # The record keeps the start of its last attempt only.
        started_at=record.started_at,
        last_attempted_at=record.started_at,
        finished_at=record.finished_at,
        args=record.input.get("args", []),
        kwargs=record.input.get("kwargs", {}),
        backend=backend,
        errors=errors_of(record),
        # One entry per attempt (Django counts attempts by them); the record names only
        # the worker of the last one.
        worker_ids=[record.worker] * record.attempts if record.worker else [],
    )
    if record.status == TaskStatus.SUCCEEDED:
        # A frozen dataclass: django-tasks' own backends set it the same way.
        object.__setattr__(result, "_return_value", (record.result or {}).get("return_value"))
    return result


def errors_of(record: TaskRecord) -> list[TaskError]:
    """The errors of the record's attempts, oldest first.

    Each failed attempt has its entry in ``error_history``; a final error recorded without
    one (a time limit, a lost worker) is added. A cancelled task, which Django counts as
    FAILED, gets ``TaskCancelled``, so that a FAILED result always says why.
    """
    errors = [
        _task_error(entry["error_type"], entry["error_message"], entry.get("traceback") or "")
        for entry in record.error_history
    ]
    last = record.error_history[-1] if record.error_history else {}
    if record.error_type and (
        (last.get("error_type"), last.get("error_message"))
        != (record.error_type, record.error_message)
    ):
        errors.append(_task_error(record.error_type, record.error_message, record.error_traceback))
    if record.status == TaskStatus.CANCELLED:
        errors.append(_task_error("TaskCancelled", "The task was cancelled.", ""))
    return errors


def _task_error(error_type: str, message: str, traceback: str) -> TaskError:
    path = _printed_class(traceback, error_type) or _RECORDED_ERRORS.get(error_type)
    if path is None:
        path = f"builtins.{error_type}" if hasattr(builtins, error_type) else error_type
    return TaskError(exception_class_path=path, traceback=traceback or f"{path}: {message}")


def _printed_class(traceback: str, error_type: str) -> str | None:
    """The module path of the class named ``error_type`` in the traceback's last mention."""
    for printed in reversed(_EXCEPTION_LINE.findall(traceback)):
        if printed.rpartition(".")[2] == error_type:
            # Python prints the classes of builtins (and __main__) without their module.
            return printed if "." in printed else f"builtins.{printed}"
    return None
