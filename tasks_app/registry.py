"""The task types users can submit, and the Celery task that runs each of them.

A task type is declared once, next to its body::

    @register_task_type("diagnostics.sleep", input_serializer=SleepInput, queue="long")
    def sleep(context: TaskContext, *, seconds: float, steps: int) -> dict: ...

That registers a Celery task of the same name whose only job is to hand the record's id
to ``execution.execute_task_record``; the body gets the validated input as keyword
arguments and a context for progress and cancellation.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from celery import Task, shared_task
from rest_framework import serializers

from tasks_app.errors import TransientTaskError

if TYPE_CHECKING:
    from tasks_app.models import TaskRecord


class UnknownTaskType(LookupError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    """Which errors are worth another attempt, and how long to wait before each one."""

    retry_on: tuple[type[BaseException], ...] = (TransientTaskError,)
    max_retries: int = 3
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    # Up to this fraction is added at random, so retries of many tasks do not stampede.
    jitter: float = 0.25

    def should_retry(self, error: BaseException, *, retries_done: int) -> bool:
        return isinstance(error, self.retry_on) and retries_done < self.max_retries

    def countdown(self, *, retries_done: int) -> float:
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2**retries_done)
        return round(delay * (1 + random.uniform(0, self.jitter)), 3)


NO_RETRY = RetryPolicy(retry_on=(), max_retries=0)


@dataclass(frozen=True)
class TaskType:
    name: str
    body: Callable[..., dict | None]
    input_serializer: type[serializers.Serializer]
    description: str
    queue: str = "default"
    priority: int = 5
    soft_time_limit: int | None = None
    time_limit: int | None = None
    retry: RetryPolicy = field(default=NO_RETRY)
    # Internal types (started by another app's service, e.g. document processing) are not
    # listed in /task-types/ and cannot be submitted through /tasks/.
    public: bool = True
    # Called with the record once it reaches a final status, whoever moved it there.
    on_finished: Callable[["TaskRecord"], None] | None = field(default=None, repr=False)
    celery_task: Task | None = field(default=None, compare=False, repr=False)


_task_types: dict[str, TaskType] = {}


def register_task_type(
    name: str,
    *,
    input_serializer: type[serializers.Serializer],
    queue: str = "default",
    priority: int = 5,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    retry: RetryPolicy = NO_RETRY,
    public: bool = True,
    on_finished: Callable[["TaskRecord"], None] | None = None,
) -> Callable:
    def decorator(body: Callable[..., dict | None]) -> Callable[..., dict | None]:
        spec = TaskType(
            name=name,
            body=body,
            input_serializer=input_serializer,
            description=(body.__doc__ or "").strip(),
            queue=queue,
            priority=priority,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            retry=retry,
            public=public,
            on_finished=on_finished,
        )

        def run(celery_task: Task, task_id: str) -> dict | None:
            # Imported here: execution uses the services, which load before any task runs.
            from tasks_app.execution import execute_task_record

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
        _task_types[name] = spec
        return body

    return decorator


def get_task_type(name: str) -> TaskType:
    try:
        return _task_types[name]
    except KeyError:
        raise UnknownTaskType(name) from None


def all_task_types(*, public_only: bool = False) -> list[TaskType]:
    specs = (spec for spec in _task_types.values() if spec.public or not public_only)
    return sorted(specs, key=lambda spec: spec.name)
