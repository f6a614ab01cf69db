"""Finished task records, and workflows that ended or failed, waiting to be announced to
whoever registered for them.

A move to a final status marks the record ``announce_pending`` in its own statement when
it matches the condition an app registered (``announce_finishes_where``): the mark is the
outbox of finishes, as ``dispatched_at IS NULL`` is the relay's outbox of submits. The
app reads marked records here, writes what it makes of them (webhook events), and clears
the marks in the same transaction, so each finish is announced once. Workflows are marked
the same way (``workflow.announce_workflow_moves_where``).
"""

from collections.abc import Callable

from django.db import connection
from django.db.models import QuerySet

from api.errors import DomainError
from tasks_app.errors import CallbackUrlNotAllowed
from tasks_app.models import TaskRecord, Workflow


def records_to_announce(*, limit: int) -> list[TaskRecord]:
    """Up to ``limit`` marked records, oldest finish first, locked until the caller's
    transaction ends; another reader skips them (PostgreSQL) rather than waiting."""
    return _marked(TaskRecord.objects.all(), oldest_first="finished_at", limit=limit)


def records_mark_announced(*, task_ids: list) -> int:
    return _unmark(TaskRecord.objects.filter(pk__in=task_ids))


def workflows_to_announce(*, limit: int) -> list[Workflow]:
    """Up to ``limit`` marked workflows, oldest first, locked as ``records_to_announce``."""
    return _marked(Workflow.objects.all(), oldest_first="created_at", limit=limit)


def workflows_mark_announced(*, workflow_ids: list) -> int:
    return _unmark(Workflow.objects.filter(pk__in=workflow_ids))


def _marked(rows: QuerySet, *, oldest_first: str, limit: int) -> list:
    rows = rows.filter(announce_pending=True).order_by(oldest_first)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return list(rows[:limit])


def _unmark(rows: QuerySet) -> int:
    return rows.filter(announce_pending=True).update(announce_pending=False)


# How a task's callback_url is checked at submit: by the app that sends callbacks
# (``callback_urls_checked_by``), which knows where it may send.
_callback_check: Callable[[str], str] | None = None


def callback_urls_checked_by(check: Callable[[str], str]) -> None:
    """``check(url)`` returns the URL to store, or raises a ``DomainError`` saying why not."""
    global _callback_check  # noqa: PLW0603 - set once, from AppConfig.ready()
    _callback_check = check


def callback_url_clean(url: str) -> str:
    """The callback URL to store for a submit; raises ``CallbackUrlNotAllowed``."""
    if _callback_check is None:
        raise CallbackUrlNotAllowed("This service sends no callbacks.")
    try:
        return _callback_check(url)
    except DomainError as error:
        raise CallbackUrlNotAllowed(str(error)) from None
