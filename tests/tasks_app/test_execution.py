"""What a worker does with one delivery, without a worker: the real Celery task, run here.

``celery_task.apply()`` runs one delivery in this process with a real request, through
Celery's own tracer (not the global eager mode): the claim, the body, the outcome and
Celery's result row are what a worker would produce. Real worker runs are in
tests/integration/.

Each test has no second process, so what happens elsewhere while a body runs (an owner's
cancel, the task given to another worker) is done by the body itself, at a step the test
chooses (``meanwhile``).
"""

import json
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from celery import states
from celery.signals import task_retry
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult
from rest_framework import serializers

from tasks_app import services, transitions
from tasks_app.errors import PermanentTaskError, TransientTaskError
from tasks_app.execution import TaskContext
from tasks_app.models import DeadLetter, DiagnosticCounter, TaskRecord, TaskStatus
from tasks_app.registry import register_task_type
from tasks_app.task_types import RetryPolicy, get_task_type

pytestmark = pytest.mark.django_db


class AnyInput(serializers.Serializer):
    """The tests submit through the service, which takes input already validated."""


# step -> what happens elsewhere just before the body's step (an action on the task id)
MEANWHILE: dict[int, Callable[[str], None]] = {}
# the steps the bodies got to do, in order
STEPS_DONE: list[int] = []


def _meanwhile(context: TaskContext, step: int) -> None:
    action = MEANWHILE.pop(step, None)
    if action is not None:
        action(context.task_id)


# Test-only task types: not public, so /task-types/ and /tasks/ never see them.
@register_task_type("tests.execution.steps", input_serializer=AnyInput, public=False)
def steps_body(context: TaskContext, *, steps: int) -> dict:
    """Does ``steps`` steps, reporting progress after each."""
    for step in range(1, steps + 1):
        _meanwhile(context, step)
        STEPS_DONE.append(step)
        context.report_progress(step, steps, f"step {step}")
    _meanwhile(context, steps + 1)  # after the last step, before the result is stored
    return {"steps": steps}


@register_task_type("tests.execution.checks", input_serializer=AnyInput, public=False)
def checks_body(context: TaskContext, *, steps: int) -> dict:
    """Does ``steps`` steps without progress, asking before each whether to go on."""
    for step in range(1, steps + 1):
        _meanwhile(context, step)
        context.raise_if_cancelled()
        STEPS_DONE.append(step)
    return {"steps": steps}


@register_task_type("tests.execution.fail", input_serializer=AnyInput, public=False)
def fail_body(context: TaskContext, *, message: str) -> dict:
    """Fails for good."""
    _meanwhile(context, 1)
    raise PermanentTaskError(message)


FLAKY_RETRY = RetryPolicy(retry_on=(TransientTaskError,), max_retries=2, jitter=0)


@register_task_type(
    "tests.execution.flaky", input_serializer=AnyInput, public=False, retry=FLAKY_RETRY
)
def flaky_body(context: TaskContext, *, failures: int) -> dict:
    """Fails with a transient error in its first ``failures`` attempts."""
    if context.attempt <= failures:
        raise TransientTaskError(f"busy in attempt {context.attempt}")
    return {"attempt": context.attempt}


@register_task_type("tests.execution.atomic", input_serializer=AnyInput, public=False)
def atomic_body(context: TaskContext, *, key: str) -> None:
    """Writes one row, committed with the task's success or not at all."""
    _meanwhile(context, 1)
    with context.complete_atomically(result={"key": key}):
        DiagnosticCounter.objects.create(key=key, count=1)


@pytest.fixture(autouse=True)
def bodies_start_afresh(monkeypatch):
    for name in ("steps", "checks", "fail", "flaky", "atomic"):
        # A worker stores every outcome in Celery's result row; apply() does only when asked.
        celery_task = get_task_type(f"tests.execution.{name}").celery_task
        monkeypatch.setattr(celery_task, "store_eager_result", True)
    yield
    MEANWHILE.clear()
    STEPS_DONE.clear()


def submit(owner, task_type: str, **task_input) -> TaskRecord:
    return services.task_submit(
        owner=owner, task_type=get_task_type(task_type), input_data=task_input
    )


def deliver(task_id):
    """One delivery of the task's message, run in this process as a worker would run it."""
    record = TaskRecord.objects.get(pk=task_id)
    celery_task = get_task_type(record.task_type).celery_task
    return celery_task.apply(args=[str(task_id)], task_id=str(task_id))


def cancel(task_id: str) -> None:
    """The owner cancels (in the web process)."""
    services.task_cancel(record=TaskRecord.objects.get(pk=task_id))


def give_to_another_worker(task_id: str) -> None:
    """This worker is presumed dead: the task is queued again and another worker claims it.

    The requeue is the one tasks_recover_stale makes after the heartbeat timeout.
    """
    TaskRecord.objects.transition(pk=task_id, to=TaskStatus.QUEUED, worker="")
    transitions.task_claim(task_id=task_id, worker="worker-b@host")


def celery_row(task_id) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=str(task_id)).first()


def test_delivery_runs_the_body_and_stores_its_result(user):
    record = submit(user, "tests.execution.steps", steps=2)

    outcome = deliver(record.pk)

    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCEEDED
    assert record.result == {"steps": 2}
    assert (record.progress_current, record.progress_total, record.progress_message) == (
        2,
        2,
        "step 2",
    )
    assert record.attempts == 1
    assert record.worker == socket.gethostname()  # apply() runs as this host's worker
    assert record.started_at <= record.finished_at
    assert STEPS_DONE == [1, 2]
    assert outcome.state == states.SUCCESS
    row = celery_row(record.pk)
    assert (row.status, row.result, row.content_type) == (
        states.SUCCESS,
        '{"steps": 2}',
        "application/json",
    )
    # As Celery's backend writes it (CELERY_RESULT_EXTENDED), though written with the record.
    assert (row.task_name, row.worker) == ("tests.execution.steps", socket.gethostname())
    assert row.date_done is not None
    assert not DeadLetter.objects.exists()


def test_permanent_error_fails_the_task_and_leaves_a_dead_letter(user):
    record = submit(user, "tests.execution.fail", message="The file is not a PDF.")

    outcome = deliver(record.pk)

    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert (record.error_type, record.error_message) == (
        "PermanentTaskError",
        "The file is not a PDF.",
    )
    assert "raise PermanentTaskError(message)" in record.error_traceback
    assert [entry["attempt"] for entry in record.error_history] == [1]
    assert record.finished_at is not None
    dead_letter = DeadLetter.objects.get(task=record)
    assert (dead_letter.final_status, dead_letter.error_message) == (
        TaskStatus.FAILED,
        "The file is not a PDF.",
    )
    assert outcome.state == states.FAILURE
    assert celery_row(record.pk).status == states.FAILURE


@pytest.fixture
def records_at_retry():
    """The record as it is when Celery schedules a retry (its task_retry signal)."""
    seen = []

    def snapshot(request=None, reason=None, **kwargs):
        seen.append((TaskRecord.objects.get(pk=request.id), reason.when))

    task_retry.connect(snapshot, weak=False)
    yield seen
    task_retry.disconnect(snapshot)


def test_transient_error_marks_the_task_retrying_and_the_retry_runs_it_again(
    user, records_at_retry
):
    record = submit(user, "tests.execution.flaky", failures=1)

    before = timezone.now()
    outcome = deliver(record.pk)
    after = timezone.now()

    # The retry's own delivery: apply() runs it at once, in this call, instead of after
    # the countdown (a worker would get it from the broker then).
    [(retrying, countdown)] = records_at_retry
    assert retrying.status == TaskStatus.RETRYING
    assert countdown == FLAKY_RETRY.backoff_seconds  # the first backoff; no jitter here
    due = timedelta(seconds=countdown)
    assert before + due <= retrying.next_attempt_at <= after + due
    assert (retrying.error_type, retrying.error_message) == (
        "TransientTaskError",
        "busy in attempt 1",
    )
    assert [(e["attempt"], e["retry_in"]) for e in retrying.error_history] == [(1, countdown)]

    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCEEDED
    assert (record.attempts, record.result) == (2, {"attempt": 2})
    assert [entry["attempt"] for entry in record.error_history] == [1]
    assert outcome.state == states.SUCCESS
    assert celery_row(record.pk).status == states.SUCCESS
    assert not DeadLetter.objects.exists()


def test_transient_errors_past_the_retry_limit_fail_the_task_with_every_attempt_kept(user):
    record = submit(user, "tests.execution.flaky", failures=99)

    deliver(record.pk)  # the first attempt and both retries (apply() runs them at once)

    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert (record.attempts, record.error_message) == (3, "busy in attempt 3")
    history = [(e["attempt"], e["retry_in"]) for e in record.error_history]
    assert history == [(1, 2.0), (2, 4.0), (3, None)]
    dead_letter = DeadLetter.objects.get(task=record)
    assert [entry["attempt"] for entry in dead_letter.attempts] == [1, 2, 3]
    assert celery_row(record.pk).status == states.FAILURE


@pytest.mark.parametrize(
    "status",
    [TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TIMED_OUT],
)
def test_duplicate_delivery_of_a_claimed_or_finished_task_changes_nothing(user, status):
    record = submit(user, "tests.execution.steps", steps=2)
    TaskRecord.objects.filter(pk=record.pk).update(status=status, attempts=1, worker="w1")
    before = TaskRecord.objects.filter(pk=record.pk).values().get()

    outcome = deliver(record.pk)

    assert TaskRecord.objects.filter(pk=record.pk).values().get() == before
    assert STEPS_DONE == []
    assert outcome.state == states.IGNORED
    assert celery_row(record.pk) is None  # Celery's row is left as the first delivery wrote it


def test_delivery_of_a_cancelled_task_skips_the_body_and_stores_it_revoked(user):
    record = submit(user, "tests.execution.steps", steps=2)
    cancel(str(record.pk))
    before = TaskRecord.objects.filter(pk=record.pk).values().get()

    deliver(record.pk)

    assert TaskRecord.objects.filter(pk=record.pk).values().get() == before
    assert STEPS_DONE == []
    assert celery_row(record.pk).status == states.REVOKED


def test_delivery_without_a_record_does_nothing(user):
    task_id = str(uuid.uuid4())
    celery_task = get_task_type("tests.execution.steps").celery_task

    outcome = celery_task.apply(args=[task_id], task_id=task_id)

    assert outcome.state == states.IGNORED
    assert not TaskRecord.objects.exists()
    assert STEPS_DONE == []


def test_cancel_during_the_body_stops_it_at_its_next_progress_report(user):
    record = submit(user, "tests.execution.steps", steps=3)
    MEANWHILE[1] = cancel

    deliver(record.pk)

    record.refresh_from_db()
    assert STEPS_DONE == [1]  # the report after step 1 was refused; steps 2 and 3 never ran
    assert record.status == TaskStatus.CANCELLED
    assert (record.progress_current, record.result) == (0, None)
    assert celery_row(record.pk).status == states.REVOKED
    assert not DeadLetter.objects.exists()


def test_cancel_during_the_body_stops_it_at_its_next_check(user):
    record = submit(user, "tests.execution.checks", steps=3)
    MEANWHILE[2] = cancel

    deliver(record.pk)

    record.refresh_from_db()
    assert STEPS_DONE == [1]
    assert record.status == TaskStatus.CANCELLED
    assert record.result is None
    assert celery_row(record.pk).status == states.REVOKED


def test_cancel_after_the_last_step_drops_the_result(user):
    record = submit(user, "tests.execution.steps", steps=2)
    MEANWHILE[3] = cancel  # after the last step, before the result is stored

    deliver(record.pk)

    record.refresh_from_db()
    assert STEPS_DONE == [1, 2]
    assert record.status == TaskStatus.CANCELLED
    assert record.result is None
    assert (record.progress_current, record.progress_total) == (2, 2)
    assert celery_row(record.pk).status == states.REVOKED


def test_error_raised_after_a_cancel_counts_as_the_cancel_not_a_failure(user):
    record = submit(user, "tests.execution.fail", message="Lost my input.")
    MEANWHILE[1] = cancel  # e.g. the body found its work taken away, and raised

    deliver(record.pk)

    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    assert (record.error_type, record.error_message, record.error_history) == ("", "", [])
    assert not DeadLetter.objects.exists()
    assert celery_row(record.pk).status == states.REVOKED


def test_complete_atomically_commits_the_body_writes_with_its_success(user):
    record = submit(user, "tests.execution.atomic", key="once")

    deliver(record.pk)

    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCEEDED
    assert record.result == {"key": "once"}
    assert DiagnosticCounter.objects.get(key="once").count == 1


def test_complete_atomically_rolls_back_the_body_writes_when_the_task_was_cancelled(user):
    record = submit(user, "tests.execution.atomic", key="never")
    MEANWHILE[1] = cancel

    deliver(record.pk)

    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    assert record.result is None
    assert not DiagnosticCounter.objects.filter(key="never").exists()
    assert celery_row(record.pk).status == states.REVOKED


@pytest.mark.parametrize(
    ("task_type", "task_input", "given_away_at"),
    [
        ("tests.execution.steps", {"steps": 2}, 1),  # before its first progress report
        ("tests.execution.steps", {"steps": 2}, 3),  # before its result is stored
        ("tests.execution.fail", {"message": "Too late."}, 1),  # before it fails
        ("tests.execution.atomic", {"key": "stale"}, 1),  # before its atomic success
    ],
)
def test_stale_attempt_cannot_change_a_task_given_to_another_worker(
    user, task_type, task_input, given_away_at
):
    record = submit(user, task_type, **task_input)
    handed_over = []

    def hand_over(task_id: str) -> None:
        give_to_another_worker(task_id)
        handed_over.append(TaskRecord.objects.filter(pk=task_id).values().get())

    MEANWHILE[given_away_at] = hand_over

    deliver(record.pk)

    [as_the_second_attempt_left_it] = handed_over
    assert as_the_second_attempt_left_it["status"] == TaskStatus.RUNNING
    assert as_the_second_attempt_left_it["attempts"] == 2
    assert as_the_second_attempt_left_it["worker"] == "worker-b@host"
    assert TaskRecord.objects.filter(pk=record.pk).values().get() == as_the_second_attempt_left_it
    assert not DeadLetter.objects.exists()
    assert not DiagnosticCounter.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_claim_progress_and_heartbeat_commit_without_waiting_for_disk_in_one_statement(user):
    # Writes a database crash may lose harmlessly (transitions.task_claim says why) must not
    # each wait for the disk, nor take BEGIN/SET/COMMIT round trips of their own.
    if connection.vendor != "postgresql":
        pytest.skip("asynchronous commit is PostgreSQL's")
    record = services.task_submit(
        owner=user, task_type=get_task_type("diagnostics.sleep"), input_data={"seconds": 0}
    )
    with CaptureQueriesContext(connection) as writes:
        claimed = transitions.task_claim(task_id=record.pk, worker="worker@host")
        assert transitions.task_report_progress(task_id=record.pk, current=1, total=2, attempt=1)
        assert transitions.task_heartbeat(task_id=record.pk, attempt=1)

    assert claimed.status == TaskStatus.RUNNING
    assert len(writes.captured_queries) == 3
    assert all("set_config('synchronous_commit', 'off', true)" in query["sql"] for query in writes)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # local to each statement's own transaction

    # Inside a caller's transaction, the caller's writes stay durable: no such condition.
    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        transitions.task_report_progress(task_id=record.pk, current=2, total=2, attempt=1)
    assert not any("set_config" in query["sql"] for query in inside)
    assert TaskRecord.objects.get(pk=record.pk).progress["current"] == 2


def success_row(task_id, result: str) -> TaskResult:
    return TaskResult(
        task_id=str(task_id),
        status=states.SUCCESS,
        result=result,
        content_type="application/json",
        content_encoding="utf-8",
        task_name="tests.execution.steps",
    )


def succeed(record: TaskRecord, *, attempt: int, result: dict) -> bool:
    return transitions.task_mark_succeeded(
        task_id=record.pk,
        result=result,
        attempt=attempt,
        result_row=success_row(record.pk, json.dumps(result)),
        task_type=get_task_type("tests.execution.steps"),
    )


@pytest.mark.django_db(transaction=True)
def test_a_success_and_celerys_row_commit_in_one_statement_that_admits_the_next_waiting(
    user, settings
):
    # The task's one wait for the disk: its success, Celery's row and whether the owner has a
    # task waiting for the freed slot, in one autocommitted statement (transitions.py).
    if connection.vendor != "postgresql":
        pytest.skip("a data-modifying WITH is PostgreSQL's")
    settings.TASKS_MAX_RUNNING_PER_USER = 1
    record = submit(user, "tests.execution.steps", steps=1)
    retried = TaskResult.objects.create(task_id=str(record.pk), status=states.RETRY)
    transitions.task_claim(task_id=record.pk, worker="worker@host")

    with CaptureQueriesContext(connection) as finish:
        assert succeed(record, attempt=1, result={"steps": 1})

    assert len(finish.captured_queries) == 1
    record.refresh_from_db()
    assert (record.status, record.result) == (TaskStatus.SUCCEEDED, {"steps": 1})
    row = TaskResult.objects.get(task_id=str(record.pk))
    assert (row.status, row.result, row.task_name) == (
        states.SUCCESS,
        '{"steps": 1}',
        "tests.execution.steps",
    )
    assert row.date_created == retried.date_created  # the retry's row, updated
    assert row.date_done > retried.date_done

    # An attempt that lost the task writes neither the record nor Celery's row.
    assert not succeed(record, attempt=2, result={"steps": 2})
    assert TaskResult.objects.get(task_id=str(record.pk)).result == '{"steps": 1}'
    assert TaskRecord.objects.get(pk=record.pk).result == {"steps": 1}

    # A task that waited for the owner's one slot is admitted once the success commits.
    running = submit(user, "tests.execution.steps", steps=1)
    waiting = submit(user, "tests.execution.steps", steps=1)
    assert waiting.status == TaskStatus.WAITING
    transitions.task_claim(task_id=running.pk, worker="worker@host")
    assert succeed(running, attempt=1, result={"steps": 1})
    waiting.refresh_from_db()
    assert waiting.status == TaskStatus.QUEUED
