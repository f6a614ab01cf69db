"""Declaring a task type: ``register_task_type`` wires a task body to its own Celery task.

This is the top of tasks_app: it imports the worker's execution, and nothing in tasks_app
imports it except the apps' ``tasks.py`` modules, which Celery's autodiscovery loads in
every process (config/celery.py).
"""

import inspect
from collections.abc import Callable

from celery import Task, shared_task
from rest_framework import serializers

from tasks_app.execution import execute_task_record
from tasks_app.models import TaskRecord
from tasks_app.models.task_record import DEFAULT_PRIORITY
from tasks_app.task_types import NO_RETRY, RetryPolicy, TaskType, task_type_add


def register_task_type(
    name: str,
    *,
    input_serializer: type[serializers.Serializer],
    queue: str = "default",
    priority: int = DEFAULT_PRIORITY,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    retry: RetryPolicy = NO_RETRY,
    public: bool = True,
    on_finished: Callable[[TaskRecord], None] | None = None,
) -> Callable:
    """Declare a task type that users (or an app's service) can submit. A complete example,
    in ``reports/tasks.py`` (each app declares its types in its ``tasks.py``, which Celery
    finds by itself; nothing else needs to import it)::

        from rest_framework import serializers

        from tasks_app.errors import TransientTaskError
        from tasks_app.execution import TaskContext
        from tasks_app.registry import RetryPolicy, register_task_type


        class MonthlyReportInput(serializers.Serializer):
            month = serializers.RegexField(r"^\\d{4}-\\d{2}$", help_text="YYYY-MM")


        @register_task_type(
            "reports.monthly",
            input_serializer=MonthlyReportInput,
            queue="default",
            soft_time_limit=300,  # the body is told to stop (SoftTimeLimitExceeded) ...
            time_limit=330,  # ... and its process is killed 30 s later
            retry=RetryPolicy(retry_on=(TransientTaskError,), max_retries=3),
        )
        def monthly_report(context: TaskContext, *, month: str) -> dict:
            \"\"\"Totals of one month (this docstring is the type's description in the API).\"\"\"
            days = days_of(month)
            for done, day in enumerate(days, start=1):
                add_up(day)
                context.report_progress(done, len(days), f"{day}")  # raises if cancelled
            return {"month": month, "days": len(days)}

    The body gets the validated input as keyword arguments and a ``TaskContext`` for
    progress and cancellation; what it returns (a JSON-serializable dict or None) is the
    task's result. ``POST /api/v1/tasks/`` with ``{"task_type": "reports.monthly", "input":
    {"month": "2026-11"}}`` then runs it.

    Arguments: ``queue`` and ``priority`` route its messages; ``soft_time_limit`` (the
    attempt's own watch stops the body) and ``time_limit`` (the pool kills the process) are
    in seconds; ``retry`` names the errors worth another attempt; ``public=False`` keeps a
    type that only an app's service starts (document processing) out of the API;
    ``on_finished`` is called with the record, in the transaction that moves it to a final
    status, whoever moved it there (the body, a cancel, a signal handler).
    """

    def decorator(body: Callable[..., dict | None]) -> Callable[..., dict | None]:
        spec = TaskType(
            name=name,
            body=body,
            input_serializer=input_serializer,
            description=inspect.cleandoc(body.__doc__ or ""),
            queue=queue,
            priority=priority,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            retry=retry,
            public=public,
            on_finished=on_finished,
        )

        def run(celery_task: Task, task_id: str) -> dict | None:
            return execute_task_record(task_type=spec, task_id=task_id, celery_task=celery_task)

        run.__name__ = run.__qualname__ = name.replace(".", "_")
        # The hard limit lives on the Celery task, so the pool applies it to every delivery,
        # including re-dispatches that carry no options of their own. The soft limit is
        # enforced by the attempt's own watch (watch.py), not by Celery: Celery's pool
        # signals the process by pid, which may by then run another task.
        celery_task = shared_task(
            name=name,
            bind=True,
            time_limit=time_limit,
            # Retries are scheduled by execute_task_record from the policy above.
            max_retries=retry.max_retries,
        )(run)
        object.__setattr__(spec, "celery_task", celery_task)
        task_type_add(spec)
        return body

    return decorator


__all__ = ["RetryPolicy", "register_task_type"]
