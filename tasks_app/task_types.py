"""The catalogue of task types: what each one is, how it retries, and looking one up.

Task types are declared with ``tasks_app.registry.register_task_type`` in each app's
``tasks.py``; this module only holds what was declared, so that services (which must tell a
task's type when it finishes) can read it without importing the worker's machinery.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from celery import Task
from rest_framework import serializers

from tasks_app.errors import TransientTaskError
from tasks_app.models.task_record import DEFAULT_PRIORITY

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
    priority: int = DEFAULT_PRIORITY
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


def task_type_add(spec: TaskType) -> None:
    """Add a declared type to the catalogue (``register_task_type`` does this)."""
    _task_types[spec.name] = spec


def get_task_type(name: str) -> TaskType:
    try:
        return _task_types[name]
    except KeyError:
        raise UnknownTaskType(name) from None


def all_task_types(*, public_only: bool = False) -> list[TaskType]:
    specs = (spec for spec in _task_types.values() if spec.public or not public_only)
    return sorted(specs, key=lambda spec: spec.name)
