"""A backend for Django's Tasks API (django-tasks, the backport of Django 6's ``django.tasks``).

A ``@task`` function, called with ``.enqueue()``, runs through this pipeline as any task
type does: ``enqueue()`` submits a ``TaskRecord`` (``services.task_submit``), the relay
publishes it once committed, a worker claims and runs it with its retries and time limits,
and a failure leaves a dead letter. The result id is the record's id; ``get_result()`` reads
the record. docs/django-tasks.md has a runnable example.

How a function becomes runnable: when the ``@task`` decorator creates its ``Task``, this
backend registers a task type named by the function's module path (``reports.tasks.send``),
internal (``public=False``: not submittable through the API), whose body calls that very
function. Nothing is ever imported from a path found in a record or a request. The worker
knows the type because it imports every app's ``tasks.py`` as it starts; a ``@task``
function elsewhere is refused when it is declared, since no worker would know it.

Owners: work enqueued inside ``enqueue_for(user)`` belongs to that user (their API, their
fair-use limits); other work to the system account ``TASKS_SYSTEM_USERNAME``, which cannot
log in and whose tasks staff see.
"""

import json
import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django_tasks import TaskContext, TaskResult
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.utils import normalize_json
from rest_framework import serializers

from tasks_app import services
from tasks_app.execution import TaskContext as PipelineContext
from tasks_app.models import TaskRecord
from tasks_app.registry import register_task_type
from tasks_app.task_results import task_result_of
from tasks_app.task_types import RetryPolicy, TaskType, UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)

# Without time limits of its own, a @task function gets these (seconds; the backend's
# OPTIONS "SOFT_TIME_LIMIT" and "TIME_LIMIT" change them).
DEFAULT_SOFT_TIME_LIMIT = 300
HARD_LIMIT_MARGIN = 30

_owner: ContextVar[AbstractBaseUser | None] = ContextVar("tasks_backend_owner", default=None)
# Each registered task type's Task, by type name: what a record's ``task_type`` runs.
_tasks_by_type: dict[str, Task] = {}


@contextmanager
def enqueue_for(owner: AbstractBaseUser) -> Iterator[None]:
    """Tasks enqueued in this block belong to ``owner``: shown in their API and dashboard,
    counted against their fair-use limits. Without it, the system account owns them."""
    if getattr(owner, "pk", None) is None:
        raise ValueError("enqueue_for() needs a saved user, not an anonymous one.")
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


def system_user_get_or_create() -> AbstractBaseUser:
    """The account that owns work enqueued for nobody: inactive, with no usable password."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        **{user_model.USERNAME_FIELD: settings.TASKS_SYSTEM_USERNAME},
        defaults={"is_active": False, "password": make_password(None)},
    )
    return user


def pipeline_priority(priority: int) -> int:
    """Django's priority (-100 to 100, 0 by default) as ours (0 to 9, 5 by default); larger
    is more urgent in both, and the order is kept, though neighbours may share a value."""
    if priority >= 0:
        return 5 + math.ceil(priority * 4 / 100)
    return 5 - math.ceil(-priority * 5 / 100)


@dataclass(frozen=True, kw_only=True)
class PipelineTask(Task):
    """A ``Task`` with this pipeline's options, given to ``@task`` as keywords:
    ``@task(soft_time_limit=60, time_limit=90, retry=RetryPolicy(max_retries=5))``."""

    soft_time_limit: int | None = None
    time_limit: int | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True, kw_only=True)
class PipelineTaskContext(TaskContext):
    """Django's ``TaskContext`` (``task_result``, ``attempt``), plus progress and cancel."""

    pipeline: PipelineContext = field(repr=False)

    def report_progress(self, current: int, total: int | None = None, message: str = "") -> None:
        """Shown in the API and dashboard; raises ``TaskCancelled`` once the task is cancelled."""
        self.pipeline.report_progress(current, total, message)

    def raise_if_cancelled(self) -> None:
        self.pipeline.raise_if_cancelled()


class EnqueuedCall(serializers.Serializer):
    """The input of a Django task: the arguments of its ``enqueue()`` call."""

    args = serializers.ListField(default=list)
    kwargs = serializers.DictField(default=dict)


class PipelineBackend(BaseTaskBackend):
    """``TASKS = {"default": {"BACKEND": "tasks_app.tasks_backend.PipelineBackend"}}``.

    Unsupported, so django-tasks refuses them with its own ``InvalidTaskError``: ``run_after``
    (a record is sent as soon as it commits) and coroutine functions (a worker's watch stops
    a body by raising in its thread, which an event loop's task would not see).
    """

    task_class = PipelineTask
    supports_defer = False
    supports_async_task = False
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            # The deployment's queues, not only this process's: a worker started for one
            # queue (TASKS_QUEUES=long) imports every @task, whatever queue it names.
            self.queues = {*settings.TASKS_SHIPPED_QUEUES, *settings.TASKS_QUEUES}
        self.soft_time_limit = self.options.get("SOFT_TIME_LIMIT", DEFAULT_SOFT_TIME_LIMIT)
        self.time_limit = self.options.get("TIME_LIMIT")

    def validate_task(self, task: Task) -> None:
        """Django's checks, then ours: the function lives where every worker imports it, and
        its task type is registered (once, when ``@task`` creates it)."""
        super().validate_task(task)
        module = task.func.__module__
        if not any(module == f"{config.name}.tasks" for config in apps.get_app_configs()):
            raise InvalidTaskError(
                f"{task.module_path}: a task function must be in an installed app's tasks.py, "
                "which every worker imports as it starts."
            )
        if len(task.module_path) > TaskRecord._meta.get_field("task_type").max_length:
            raise InvalidTaskError(f"{task.module_path}: the module path is too long.")
        self._task_type_of(task)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Submit a record for the call; inside a transaction it commits (and so runs) with it."""
        self.validate_task(task)
        call = {"args": _as_json(args), "kwargs": _as_json(kwargs)}
        record = services.task_submit(
            owner=_owner.get() or system_user_get_or_create(),
            task_type=replace(self._task_type_of(task), queue=task.queue_name),
            input_data=call,
            priority=pipeline_priority(task.priority),
        )
        result = self.result_of(task, record)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        try:
            pk = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        record = TaskRecord.objects.filter(pk=pk).first()
        task = _tasks_by_type.get(record.task_type) if record is not None else None
        if task is None:  # no such record, or one of a task type that is not a @task
            raise TaskResultDoesNotExist(result_id)
        return self.result_of(task, record)

    def _task_type_of(self, task: Task) -> TaskType:
        """The task type that runs ``task``, registered the first time it is asked for."""
        name = task.module_path
        if name in _tasks_by_type:
            return get_task_type(name)
        if _task_type_exists(name):
            raise InvalidTaskError(f"{name}: a task type of that name exists already.")
        soft_time_limit = getattr(task, "soft_time_limit", None) or self.soft_time_limit
        time_limit = (
            getattr(task, "time_limit", None)
            or self.time_limit
            or soft_time_limit + HARD_LIMIT_MARGIN
        )
        if time_limit <= soft_time_limit:
            raise InvalidTaskError(f"{name}: time_limit must be above soft_time_limit.")
        register_task_type(
            name,
            input_serializer=EnqueuedCall,
            queue=task.queue_name,
            priority=pipeline_priority(task.priority),
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            retry=getattr(task, "retry", None) or RetryPolicy(),
            public=False,
            on_finished=_send_finished,
        )(_body_of(task))
        _tasks_by_type[name] = task
        return get_task_type(name)

    def result_of(self, task: Task, record: TaskRecord) -> TaskResult:
        """The ``TaskResult`` of ``record``, a call of ``task``."""
        if record.queue != task.queue_name and record.queue in self.queues:
            task = task.using(queue_name=record.queue)
        return task_result_of(task=task, record=record, backend=self.alias)


def _task_type_exists(name: str) -> bool:
    try:
        get_task_type(name)
    except UnknownTaskType:
        return False
    return True


def _as_json(value: Any) -> Any:
    """``value`` as it comes back from the database: django-tasks' JSON check, then a round
    trip (dict keys become strings). Raises TypeError or ValueError before any row exists."""
    return json.loads(json.dumps(normalize_json(value), allow_nan=False))


def _body_of(task: Task):
    """The task type's body: run ``task``'s function with the enqueued arguments."""

    def body(context: PipelineContext, *, args: list, kwargs: dict) -> dict:
        backend = task.get_backend()
        started = backend.get_result(context.task_id)
        task_started.send(type(backend), task_result=started)
        if task.takes_context:
            value = task.call(
                PipelineTaskContext(task_result=started, pipeline=context), *args, **kwargs
            )
        else:
            value = task.call(*args, **kwargs)
        # Wrapped, so a function that returns None still has a result, and ``result`` stays
        # an object as for every task type.
        return {"return_value": _as_json(value)}

    body.__doc__ = task.func.__doc__
    return body


def _send_finished(record: TaskRecord) -> None:
    """``task_finished``, once the record is final (whoever moved it there). Sent robustly:
    a receiver's error must not undo the finish, in whose transaction this runs."""
    task = _tasks_by_type[record.task_type]
    backend = task.get_backend()
    result = backend.result_of(task, record)
    for receiver, error in task_finished.send_robust(type(backend), task_result=result):
        if isinstance(error, Exception):
            logger.error(
                "task_finished receiver %r failed id=%s type=%s",
                receiver,
                record.pk,
                record.task_type,
                exc_info=error,
            )
