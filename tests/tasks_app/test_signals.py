"""The Celery signal handlers, sent the signals as a worker sends them (celery/worker/request.py).

Sending the signal, not calling the function, also proves the handler is connected.
"""

import gc
from datetime import timedelta

import pytest
from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery import current_app
from celery.app.task import Context
from celery.exceptions import TimeLimitExceeded
from celery.signals import (
    celeryd_after_setup,
    task_failure,
    task_revoked,
    worker_process_init,
    worker_ready,
)
from celery.worker import state as worker_state
from django.db import connection
from django.utils import timezone

from tasks_app import signals
from tasks_app.errors import PermanentTaskError
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tasks_app.task_types import get_task_type
from tests.factories import TaskRecordFactory

TASK_TYPE = "diagnostics.sleep"  # any registered type; its hard limit is in the message


@pytest.fixture(autouse=True)
def gc_unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def claimed_record(**fields) -> TaskRecord:
    """A record as a worker's claim left it: running in its first attempt, unless told."""
    now = timezone.now()
    claimed = {
        "status": TaskStatus.RUNNING,
        "attempts": 1,
        "worker": "w1@host",
        "started_at": now,
        "heartbeat_at": now,
    }
    return TaskRecordFactory(task_type=TASK_TYPE, **{**claimed, **fields})


def fail_as_the_worker_does(record_id, exception: BaseException, *, task_name=TASK_TYPE):
    """The task_failure a worker sends for a task whose pool process did not report back."""
    task_id = str(record_id)
    try:
        raise exception
    except type(exception):
        einfo = ExceptionInfo()
    task_failure.send(
        sender=current_app.tasks[task_name],
        task_id=task_id,
        exception=exception,
        args=[task_id],
        kwargs={},
        traceback=exception.__traceback__,
        einfo=einfo,
    )


def unchanged(record: TaskRecord) -> bool:
    before = {field.attname: getattr(record, field.attname) for field in record._meta.fields}
    return TaskRecord.objects.filter(pk=record.pk).values().get() == before


@pytest.mark.django_db
def test_hard_time_limit_marks_the_running_task_timed_out_with_a_dead_letter():
    record = claimed_record()
    time_limit = get_task_type(TASK_TYPE).time_limit

    fail_as_the_worker_does(record.pk, TimeLimitExceeded(time_limit))

    record.refresh_from_db()
    assert record.status == TaskStatus.TIMED_OUT
    assert (record.error_type, record.error_message) == (
        "TimeLimitExceeded",
        f"Killed at its hard time limit of {time_limit} s.",
    )
    assert record.finished_at is not None
    dead_letter = DeadLetter.objects.get(task=record)
    assert (dead_letter.final_status, dead_letter.error_type) == (
        TaskStatus.TIMED_OUT,
        "TimeLimitExceeded",
    )


@pytest.mark.django_db
def test_lost_worker_fails_the_running_task_with_a_dead_letter():
    record = claimed_record()

    fail_as_the_worker_does(
        record.pk, WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 3.")
    )

    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.error_type == "WorkerLostError"
    assert record.error_message.startswith("worker lost: ")
    assert [entry["error_type"] for entry in record.error_history] == ["WorkerLostError"]
    assert DeadLetter.objects.get(task=record).final_status == TaskStatus.FAILED


@pytest.fixture
def worker_w1():
    """This process as the worker ``w1@host``, as its start-up (celeryd_after_setup) says."""
    celeryd_after_setup.send(sender="w1@host", instance=None, conf=current_app.conf)
    yield
    signals._node_name = None


@pytest.mark.django_db
@pytest.mark.parametrize("exception_type", [TimeLimitExceeded, WorkerLostError])
def test_a_worker_records_the_hard_failure_of_a_task_it_holds(worker_w1, exception_type):
    record = claimed_record(worker="w1@host")

    fail_as_the_worker_does(record.pk, exception_type(5))

    record.refresh_from_db()
    assert record.status in (TaskStatus.TIMED_OUT, TaskStatus.FAILED)


@pytest.mark.django_db
@pytest.mark.parametrize("exception_type", [TimeLimitExceeded, WorkerLostError])
def test_a_hung_attempt_killed_after_another_worker_took_the_task_over_changes_nothing(
    worker_w1, exception_type
):
    # w1's pool process hung; reconciliation gave the task back and w2 runs attempt 2.
    record = claimed_record(worker="w2@host", attempts=2)

    fail_as_the_worker_does(record.pk, exception_type(5))

    assert unchanged(record)
    assert not DeadLetter.objects.exists()


class RunningRequest:
    """What Celery keeps in worker.state.active_requests for a task a pool process runs."""

    def __init__(self, task_id: str):
        self.id = task_id


@pytest.mark.django_db
def test_a_hung_attempt_killed_while_another_process_of_the_same_worker_runs_it_again(
    worker_w1,
):
    record = claimed_record(worker="w1@host", attempts=2)
    attempt_2 = RunningRequest(str(record.pk))
    worker_state.active_requests.add(attempt_2)
    try:
        fail_as_the_worker_does(record.pk, TimeLimitExceeded(5))
    finally:
        worker_state.active_requests.discard(attempt_2)

    assert unchanged(record)


@pytest.mark.django_db
def test_error_raised_by_the_body_is_left_to_the_body_runner():
    record = claimed_record()

    fail_as_the_worker_does(record.pk, PermanentTaskError("The file is not a PDF."))

    assert unchanged(record)
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", [TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.FAILED, TaskStatus.TIMED_OUT]
)
@pytest.mark.parametrize("exception_type", [TimeLimitExceeded, WorkerLostError])
def test_hard_failure_after_the_task_finished_changes_nothing(status, exception_type):
    record = claimed_record(status=status, finished_at=timezone.now())

    fail_as_the_worker_does(record.pk, exception_type("late"))

    assert unchanged(record)
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_failure_of_a_task_that_is_no_task_type_touches_no_record():
    record = claimed_record()

    fail_as_the_worker_does(
        record.pk, WorkerLostError("Worker exited prematurely."), task_name="tasks_app.reconcile"
    )

    assert unchanged(record)


@pytest.mark.django_db
def test_failure_that_cannot_be_recorded_is_logged_not_raised(caplog):
    fail_as_the_worker_does("not-a-task-id", WorkerLostError("Worker exited prematurely."))

    assert "could not record failure id=not-a-task-id" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_celery_revoking_a_task_does_not_cancel_it(status):
    # Celery also revokes the tasks of a pool process it terminated (shutdown, pool restart):
    # only an owner's or staff's cancel may end a task cancelled.
    record = claimed_record(status=status)
    task_id = str(record.pk)

    task_revoked.send(
        sender=current_app.tasks[TASK_TYPE],
        request=Context(id=task_id, task=TASK_TYPE, args=[task_id], kwargs={}),
        terminated=True,
        signum=15,
        expired=False,
    )

    assert unchanged(record)


def test_pool_process_start_freezes_the_startup_objects_out_of_the_gcs_sight():
    assert gc.get_freeze_count() == 0

    worker_process_init.send(sender=None)

    assert gc.get_freeze_count() > 0


@pytest.mark.django_db(transaction=True)  # the handler closes every connection at the end
def test_worker_start_repairs_what_a_crash_left_and_keeps_no_connection(settings):
    settings.TASKS_HEARTBEAT_TIMEOUT_SECONDS = 60
    long_silent = timezone.now() - timedelta(seconds=600)
    lost_too_often = claimed_record(
        attempts=settings.TASKS_WORKER_LOST_MAX_ATTEMPTS, heartbeat_at=long_silent
    )
    alive = claimed_record()

    worker_ready.send(sender=None)

    assert connection.connection is None
    lost_too_often.refresh_from_db()
    assert lost_too_often.status == TaskStatus.FAILED
    assert lost_too_often.error_message.startswith("worker lost: ")
    assert DeadLetter.objects.get(task=lost_too_often).final_status == TaskStatus.FAILED
    assert unchanged(alive)
    assert gc.get_freeze_count() > 0  # the main process runs tasks itself in some pools
