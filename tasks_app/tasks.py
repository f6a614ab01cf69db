"""tasks_app's task types: diagnostics, for demos, health checks and tests of the pipeline itself.

Every app declares its task types in its own tasks.py (found by tasks_app's ready()).
"""

import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.db.models import F
from django_tasks import task
from rest_framework import serializers

from tasks_app.errors import TransientTaskError
from tasks_app.execution import TaskContext
from tasks_app.models import DiagnosticCounter
from tasks_app.registry import RetryPolicy, register_task_type


class DiagnosticFailure(Exception):
    """The error ``diagnostics.fail`` raises on purpose."""


class SleepInput(serializers.Serializer):
    seconds = serializers.FloatField(
        min_value=0, max_value=3600, help_text="How long to sleep in total."
    )
    steps = serializers.IntegerField(
        min_value=1, max_value=1000, default=10, help_text="Progress is reported after each step."
    )


class FlakyInput(serializers.Serializer):
    failures = serializers.IntegerField(
        min_value=0,
        max_value=10,
        default=2,
        help_text="How many attempts fail before one succeeds.",
    )
    key = serializers.CharField(
        max_length=100,
        default="",
        help_text="Count attempts under this key across tasks (so a requeued task goes on "
        "counting); without it, attempts of this task alone.",
    )


class FailInput(serializers.Serializer):
    message = serializers.CharField(
        max_length=500, default="Diagnostic failure requested.", help_text="The error to raise."
    )
    after_seconds = serializers.FloatField(
        min_value=0, max_value=600, default=0, help_text="Run this long before failing."
    )


@register_task_type(
    "diagnostics.sleep",
    input_serializer=SleepInput,
    queue="long",
    soft_time_limit=3700,
    time_limit=3720,
)
def diagnostics_sleep(context: TaskContext, *, seconds: float, steps: int) -> dict:
    """Sleep for `seconds`, in `steps` equal steps, reporting progress after each one."""
    if seconds:  # a task that does not wait has nothing to report before its last step
        context.report_progress(0, steps, "started")
    for step in range(1, steps + 1):
        _sleep_unless_cancelled(context, seconds / steps)
        context.report_progress(step, steps, f"step {step} of {steps}")
    return {"slept_seconds": seconds, "steps": steps}


def _sleep_unless_cancelled(context: TaskContext, seconds: float) -> None:
    # Long steps are cut into slices of at most a second, so a cancel is seen within one.
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, remaining))
        if remaining > 1.0:
            context.raise_if_cancelled()


class BlockInput(serializers.Serializer):
    seconds = serializers.FloatField(
        min_value=0, max_value=3600, help_text="How long to block in one call."
    )


@register_task_type(
    "diagnostics.block",
    input_serializer=BlockInput,
    queue="long",
    soft_time_limit=3700,
    time_limit=3720,
)
def diagnostics_block(context: TaskContext, *, seconds: float) -> dict:
    """Block for `seconds` in one call, never reporting progress or checking for a cancel.

    Stands for a body stuck in a long library call: a cancel still stops it, through the
    task's watch.
    """
    time.sleep(seconds)
    return {"blocked_seconds": seconds}


class QueriesInput(serializers.Serializer):
    seconds = serializers.FloatField(
        min_value=0, max_value=3600, help_text="How long to keep the database busy."
    )


def _slow_query() -> str:
    """A query that keeps the database busy for some tens of milliseconds."""
    if connection.vendor == "postgresql":
        return "SELECT pg_sleep(0.05)"
    return (
        "WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter "
        "WHERE n < 100000) SELECT count(*) FROM counter"
    )


@register_task_type(
    "diagnostics.queries",
    input_serializer=QueriesInput,
    queue="long",
    soft_time_limit=3700,
    time_limit=3720,
    # Started by the tests, not listed for users.
    public=False,
)
def diagnostics_queries(context: TaskContext, *, seconds: float) -> dict:
    """Run short database queries one after another for `seconds`, reporting no progress.

    Stands for a body that spends its time in the database: a cancel stops it through its
    watch between two queries, never inside one (which would leave the connection
    mid-command for the worker's own writes after the body).
    """
    deadline = time.monotonic() + seconds
    queries = 0
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(_slow_query())
            cursor.fetchall()
            queries += 1
    return {"queries": queries}


@register_task_type(
    "diagnostics.fail", input_serializer=FailInput, soft_time_limit=620, time_limit=640
)
def diagnostics_fail(context: TaskContext, *, message: str, after_seconds: float) -> dict:
    """Raise an error (after `after_seconds`), to exercise the failure path."""
    if after_seconds:
        context.report_progress(0, 1, "waiting before failing")
        time.sleep(after_seconds)
    raise DiagnosticFailure(message)


@register_task_type(
    "diagnostics.flaky",
    input_serializer=FlakyInput,
    soft_time_limit=60,
    time_limit=70,
    retry=RetryPolicy(
        retry_on=(TransientTaskError,), max_retries=3, backoff_seconds=0.5, backoff_max_seconds=5
    ),
)
def diagnostics_flaky(context: TaskContext, *, failures: int, key: str) -> dict:
    """Fail with a transient error on the first `failures` attempts, then succeed."""
    attempt = context.attempt
    if key:
        DiagnosticCounter.objects.get_or_create(key=key)
        DiagnosticCounter.objects.filter(key=key).update(count=F("count") + 1)
        attempt = DiagnosticCounter.objects.get(key=key).count
    if attempt <= failures:
        raise TransientTaskError(f"Transient failure on attempt {attempt}.")
    return {"succeeded_on_attempt": attempt}


class CountInput(serializers.Serializer):
    key = serializers.CharField(max_length=100, help_text="The counter to add one to.")
    seconds = serializers.FloatField(
        min_value=0, max_value=600, default=0, help_text="Work this long before counting."
    )


@register_task_type(
    "diagnostics.count", input_serializer=CountInput, soft_time_limit=620, time_limit=640
)
def diagnostics_count(context: TaskContext, *, key: str, seconds: float) -> dict:
    """Add one to the counter `key`, exactly once however often the task is delivered."""
    _sleep_unless_cancelled(context, seconds)
    with context.complete_atomically(result={"key": key}):
        DiagnosticCounter.objects.get_or_create(key=key)
        DiagnosticCounter.objects.filter(key=key).update(count=F("count") + 1)
    return {"key": key}


class OverrunInput(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=60, help_text="How long to try to run.")
    ignore_soft_limit = serializers.BooleanField(
        default=False, help_text="Keep running past the soft limit, until the hard limit kills it."
    )


@register_task_type(
    "diagnostics.overrun", input_serializer=OverrunInput, soft_time_limit=2, time_limit=5
)
def diagnostics_overrun(context: TaskContext, *, seconds: float, ignore_soft_limit: bool) -> dict:
    """Run `seconds` under a 2 s soft and 5 s hard time limit, holding a scratch file.

    The scratch file is removed however the task ends, which shows that a task stopped at
    its soft limit still cleans up.
    """
    scratch = Path(settings.VAR_DIR) / "tmp" / f"overrun-{context.task_id}"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.touch()
    try:
        context.report_progress(0, 1, f"holding {scratch.name}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                time.sleep(0.05)
            except SoftTimeLimitExceeded:
                if not ignore_soft_limit:
                    raise
    finally:
        scratch.unlink(missing_ok=True)
    return {"ran_seconds": seconds}


@task()
def count_words(text: str) -> dict:
    """Count the words of ``text``: the example of Django's Tasks API (docs/django-tasks.md).

    A ``@task`` function, not a task type: Django code enqueues it with
    ``count_words.enqueue("some text")``; users cannot submit it through the API.
    """
    return {"words": len(text.split())}
