"""The watch beside a running body stops it on a cancel, never in the middle of a database call.

The body (``diagnostics.queries``) runs here, in the main thread (``celery_task.apply()``, as
in test_execution.py), so the watch can interrupt it as it does in a pool process; the same
with a real worker is in tests/integration/test_cancel.py. The records are committed
(``transaction=True``): the watch thread and the cancelling thread have connections of
their own and must see them.
"""

import signal
import threading
import time

import pytest
from celery import states
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult
from rest_framework import serializers

from tasks_app import services, transitions
from tasks_app.execution import TaskContext
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.registry import register_task_type
from tasks_app.task_types import get_task_type
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queries_task(monkeypatch, settings):
    settings.TASKS_CANCEL_CHECK_SECONDS = 0.05
    celery_task = get_task_type("diagnostics.queries").celery_task
    # A worker stores every outcome in Celery's result row; apply() does only when asked.
    monkeypatch.setattr(celery_task, "store_eager_result", True)
    return celery_task


def cancel_later(task_id, *, after: float) -> threading.Thread:
    """The owner cancels from the web process, ``after`` seconds into the body."""

    def cancel() -> None:
        time.sleep(after)
        try:
            services.task_cancel(record=TaskRecord.objects.get(pk=task_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread


@pytest.mark.parametrize("round_", range(5))
def test_a_cancel_during_database_calls_stops_the_body_between_them(queries_task, round_):
    record = services.task_submit(
        owner=UserFactory(),
        task_type=get_task_type("diagnostics.queries"),
        input_data={"seconds": 10},
    )
    canceller = cancel_later(record.pk, after=0.3 + 0.07 * round_)

    started = time.monotonic()
    queries_task.apply(args=[str(record.pk)], task_id=str(record.pk))
    canceller.join()

    assert time.monotonic() - started < 5  # stopped by the watch, long before its 10 s
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    # The worker's own writes after the body went through on the same connection: had the
    # interruption landed inside a query, this one would be left mid-command.
    assert TaskResult.objects.get(task_id=str(record.pk)).status == states.REVOKED
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.fixture
def watch_queries(monkeypatch):
    """The queries the watch makes, by the task id it asks about."""
    asked = []

    def spy(function):
        def spied(*, task_id, attempt):
            asked.append((function.__name__, task_id))
            return function(task_id=task_id, attempt=attempt)

        return spied

    for name in ("task_is_running", "task_heartbeat"):
        monkeypatch.setattr(transitions, name, spy(getattr(transitions, name)))
    return asked


def run(task_type: str, **task_input) -> TaskRecord:
    record = services.task_submit(
        owner=UserFactory(), task_type=get_task_type(task_type), input_data=task_input
    )
    get_task_type(task_type).celery_task.apply(args=[str(record.pk)], task_id=str(record.pk))
    record.refresh_from_db()
    return record


def watch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("task-watch-")]


def test_short_bodies_share_the_process_watch_and_cost_it_no_query(settings, watch_queries):
    settings.TASKS_CANCEL_CHECK_SECONDS = 1.0
    records = [run("diagnostics.sleep", seconds=0, steps=1) for _ in range(5)]

    assert [record.status for record in records] == [TaskStatus.SUCCEEDED] * 5
    assert len(watch_threads()) == 1  # one for the process, not one per task
    time.sleep(1.2)  # past the first check the first body would have had
    assert watch_queries == []


def test_the_watch_checks_and_heartbeats_a_long_body(settings, watch_queries):
    settings.TASKS_CANCEL_CHECK_SECONDS = 0.05
    settings.TASKS_HEARTBEAT_SECONDS = 0.2

    record = run("diagnostics.block", seconds=0.7)

    assert record.status == TaskStatus.SUCCEEDED
    asked = {name for name, task_id in watch_queries if task_id == str(record.pk)}
    assert asked == {"task_is_running", "task_heartbeat"}
    assert record.heartbeat_at > record.started_at


def blocked_signals(native_thread_id: int) -> set[int]:
    """The thread's blocked signals, as the kernel reports them."""
    with open(f"/proc/self/task/{native_thread_id}/status") as status:
        mask = next(int(line.split()[1], 16) for line in status if line.startswith("SigBlk:"))
    return {number + 1 for number in range(64) if mask >> number & 1}


def test_the_watch_thread_leaves_process_signals_to_the_main_thread():
    # billiard's pool process blocks SIGTERM in its main thread while it holds the lock of
    # the pool's shared result pipe; a watch thread that took the signal instead would kill
    # the process holding it, and wedge the whole pool (the hard time limit test in
    # tests/integration/test_delivery.py shows it with a real worker).
    main_before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    run("diagnostics.sleep", seconds=0, steps=1)
    (watch,) = watch_threads()

    blocked = blocked_signals(watch.native_id)
    assert {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2} <= blocked
    assert signal.SIGSEGV not in blocked  # a fault is still raised where it happens
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == main_before


@register_task_type("tests.watch.lingers", input_serializer=serializers.Serializer, public=False)
def lingers_body(context: TaskContext, *, seconds: float) -> dict:
    """Reports its last step, then goes on for up to ``seconds``, looking at its own record."""
    context.report_progress(3, 3, "all steps done, tidying up")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = TaskRecord.objects.get(pk=context.task_id)
        if record.progress_current == 3:
            return {"saw_its_last_step_while_running": record.status == TaskStatus.RUNNING}
        time.sleep(0.02)
    return {"saw_its_last_step_while_running": False}


def test_a_short_bodys_last_step_is_written_by_its_finish(queries_task, settings):
    settings.TASKS_CANCEL_CHECK_SECONDS = 1.0
    sleep = get_task_type("diagnostics.sleep")
    record = services.task_submit(
        owner=UserFactory(), task_type=sleep, input_data={"seconds": 0, "steps": 2}
    )

    with CaptureQueriesContext(connection) as queries:
        sleep.celery_task.apply(args=[str(record.pk)], task_id=str(record.pk))

    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCEEDED
    assert (record.progress_current, record.progress_total, record.progress_message) == (
        2,
        2,
        "step 2 of 2",
    )
    # The first step was written at once; the last one rode with the success.
    progress_writes = [q["sql"] for q in queries if '"progress_current" = ' in q["sql"]]
    assert len(progress_writes) == 2
    assert "succeeded" in progress_writes[-1]


def test_a_body_that_goes_on_after_its_last_step_shows_it_while_it_runs(settings):
    settings.TASKS_CANCEL_CHECK_SECONDS = 1.0
    record = run("tests.watch.lingers", seconds=3)

    assert record.status == TaskStatus.SUCCEEDED
    assert record.result == {"saw_its_last_step_while_running": True}  # the watch wrote it
    assert (record.progress_current, record.progress_message) == (3, "all steps done, tidying up")
