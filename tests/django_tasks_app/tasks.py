"""@task functions the tests enqueue; every worker imports them (an installed app's tasks.py)."""

import time

from django.contrib.auth import get_user_model
from django_tasks import task

from tasks_app.errors import TransientTaskError
from tasks_app.task_types import RetryPolicy


class ReportFailure(Exception):
    """What ``fail`` raises."""


@task()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task()
def user_exists(username: str) -> bool:
    """Whether the user is there: a task enqueued with its creation must see it."""
    return get_user_model().objects.filter(username=username).exists()


@task()
def fail(message: str) -> None:
    raise ReportFailure(message)


@task(
    takes_context=True,
    retry=RetryPolicy(max_retries=3, backoff_seconds=0.2, backoff_max_seconds=1),
)
def flaky(context, failures: int) -> dict:
    """Fail with a transient error on the first ``failures`` attempts."""
    if context.attempt <= failures:
        raise TransientTaskError(f"attempt {context.attempt} failed")
    return {"attempt": context.attempt}


@task(takes_context=True, soft_time_limit=1, time_limit=10)
def overrun(context, seconds: float) -> None:
    """Run past its 1 s time limit, in short sleeps, reporting progress."""
    context.report_progress(0, 1, "started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@task(queue_name="long", priority=100)
def urgent_long() -> str:
    return "done"
