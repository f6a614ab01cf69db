"""Django's Tasks API on our pipeline (tasks_app/tasks_backend.py), without a worker: what
``enqueue()`` records, what ``get_result()`` reads back, and what the backend refuses.

What a real worker does with these tasks is proven in tests/integration/test_django_tasks.py.
"""

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks.exceptions import (
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django_tasks.signals import task_enqueued

from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.task_types import get_task_type
from tasks_app.tasks import count_words
from tasks_app.tasks_backend import enqueue_for, pipeline_priority
from tests.conftest import client_for
from tests.django_tasks_app.tasks import add, fail, flaky, overrun, urgent_long
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

ADD = "tests.django_tasks_app.tasks.add"


class Boom(Exception):
    pass


class StandInContext:
    """Stands in for the worker's TaskContext: records progress instead of writing it."""

    def __init__(self, task_id: str, attempt: int = 1):
        self.task_id = task_id
        self.attempt = attempt
        self.progress = []

    def report_progress(self, current, total=None, message=""):
        self.progress.append((current, total, message))

    def raise_if_cancelled(self):
        pass


def test_enqueue_records_a_queued_task_owned_by_the_system_account():
    result = add.enqueue(2, b=3)

    record = TaskRecord.objects.get(pk=result.id)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2] and result.kwargs == {"b": 3}
    assert record.task_type == ADD
    assert record.input == {"args": [2], "kwargs": {"b": 3}}
    assert (record.status, record.queue, record.priority) == (TaskStatus.QUEUED, "default", 5)
    assert record in TaskRecord.objects.outbox()  # committed: the relay publishes it
    system = record.owner
    assert system.get_username() == "system"
    assert not system.is_active and not system.has_usable_password()


def test_enqueue_for_a_user_gives_them_the_task(user):
    with enqueue_for(user):
        result = add.enqueue(1, 1)

    assert TaskRecord.objects.get(pk=result.id).owner == user
    assert TaskRecord.objects.get(pk=add.enqueue(1, 1).id).owner != user  # the block ended


def test_enqueue_for_an_anonymous_user_is_refused():
    with pytest.raises(ValueError, match="saved user"):
        with enqueue_for(AnonymousUser()):
            pass


def test_the_owner_sees_the_task_in_the_api_and_others_do_not(user, api, other_api):
    with enqueue_for(user):
        result = add.enqueue(2, 3)

    response = api.get(f"/api/v1/tasks/{result.id}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["task_type"], body["status"], body["owner"]) == (ADD, "queued", "alice")
    assert body["input"] == {"args": [2, 3], "kwargs": {}}
    assert other_api.get(f"/api/v1/tasks/{result.id}/").status_code == 404


def test_staff_see_the_system_accounts_tasks(staff_user):
    result = add.enqueue(2, 3)

    assert client_for(staff_user).get(f"/api/v1/tasks/{result.id}/").status_code == 200


def test_the_api_neither_lists_nor_accepts_django_tasks(api):
    listed = [spec["name"] for spec in api.get("/api/v1/task-types/").json()]
    response = api.post(
        "/api/v1/tasks/", {"task_type": ADD, "input": {"args": [1, 2]}}, format="json"
    )

    assert ADD not in listed
    assert response.status_code == 400
    assert not TaskRecord.objects.exists()


def test_arguments_that_are_not_json_are_refused_before_any_record():
    with pytest.raises(TypeError):
        add.enqueue(1, datetime.date(2026, 1, 1))

    assert not TaskRecord.objects.exists()


def test_a_rolled_back_transaction_leaves_no_task():
    with pytest.raises(Boom):
        with transaction.atomic():
            add.enqueue(1, 2)
            raise Boom

    assert not TaskRecord.objects.exists()


def test_enqueue_sends_django_tasks_signal():
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        result = add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(receiver)

    assert received == [result.id]


def test_get_result_reads_the_record_back():
    enqueued = add.enqueue(2, 3)

    result = add.get_result(enqueued.id)

    assert (result.id, result.status, result.args) == (enqueued.id, TaskResultStatus.READY, [2, 3])
    assert result.task.func is add.func
    assert result.enqueued_at == TaskRecord.objects.get(pk=enqueued.id).created_at
    assert not result.is_finished
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_get_result_of_another_function_or_no_django_task_is_refused():
    with pytest.raises(TaskResultMismatch):
        fail.get_result(add.enqueue(1, 2).id)
    for unknown in ["not-a-uuid", "00000000-0000-0000-0000-000000000001"]:
        with pytest.raises(TaskResultDoesNotExist):
            add.get_result(unknown)
    with pytest.raises(TaskResultDoesNotExist):  # a task type of the API, not a @task
        add.get_result(str(TaskRecordFactory().pk))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TaskStatus.WAITING, TaskResultStatus.READY),
        (TaskStatus.QUEUED, TaskResultStatus.READY),
        (TaskStatus.RETRYING, TaskResultStatus.READY),
        (TaskStatus.RUNNING, TaskResultStatus.RUNNING),
        (TaskStatus.SUCCEEDED, TaskResultStatus.SUCCESSFUL),
        (TaskStatus.FAILED, TaskResultStatus.FAILED),
        (TaskStatus.TIMED_OUT, TaskResultStatus.FAILED),
        (TaskStatus.CANCELLED, TaskResultStatus.FAILED),
    ],
)
def test_our_statuses_map_onto_djangos(status, expected):
    result = add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).update(status=status)

    result.refresh()

    assert result.status == expected


def test_a_successful_result_has_the_return_value_and_its_workers():
    result = add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).update(
        status=TaskStatus.SUCCEEDED,
        result={"return_value": 3},
        attempts=2,
        worker="w1",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )

    result.refresh()

    assert result.return_value == 3
    assert result.is_finished and result.finished_at is not None
    assert result.worker_ids == ["w1", "w1"] and result.attempts == 2


def _attempt(error_type: str, message: str, traceback: str = "") -> dict:
    return {
        "attempt": 1,
        "error_type": error_type,
        "error_message": message,
        "traceback": traceback,
    }


def test_a_failed_result_lists_each_attempts_error_with_its_class():
    result = flaky.enqueue(5)
    traceback = (
        "Traceback (most recent call last):\n  ...\n"
        "tasks_app.errors.TransientTaskError: attempt 1 failed\n"
    )
    TaskRecord.objects.filter(pk=result.id).update(
        status=TaskStatus.FAILED,
        error_type="ValueError",
        error_message="bad",
        error_traceback="Traceback ...\nValueError: bad\n",
        error_history=[
            _attempt("TransientTaskError", "attempt 1 failed", traceback),
            _attempt("ValueError", "bad", "Traceback ...\nValueError: bad\n"),
        ],
    )

    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class.__name__ for error in result.errors] == [
        "TransientTaskError",
        "ValueError",
    ]
    assert "attempt 1 failed" in result.errors[0].traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value


def test_a_timed_out_or_cancelled_result_says_why():
    timed_out, cancelled = overrun.enqueue(5), add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=timed_out.id).update(
        status=TaskStatus.TIMED_OUT, error_type="TimeLimitExceeded", error_message="ran past 1 s"
    )
    TaskRecord.objects.filter(pk=cancelled.id).update(status=TaskStatus.CANCELLED)

    timed_out.refresh()
    cancelled.refresh()

    assert [error.exception_class_path for error in timed_out.errors] == [
        "celery.exceptions.TimeLimitExceeded"
    ]
    assert "ran past 1 s" in timed_out.errors[0].traceback
    assert [error.exception_class.__name__ for error in cancelled.errors] == ["TaskCancelled"]


def test_the_type_body_calls_the_function_and_wraps_its_return_value():
    result = add.enqueue(2, 3)
    body = get_task_type(ADD).body

    assert body(StandInContext(result.id), args=[2, 3], kwargs={}) == {"return_value": 5}


def _running(result, *, attempts: int) -> None:
    TaskRecord.objects.filter(pk=result.id).update(
        status=TaskStatus.RUNNING, attempts=attempts, worker="w1"
    )


def test_a_function_that_takes_context_reports_progress_through_it():
    result = overrun.enqueue(0)
    _running(result, attempts=1)
    context = StandInContext(result.id)

    get_task_type(overrun.module_path).body(context, args=[0], kwargs={})

    assert context.progress == [(0, 1, "started")]


def test_a_function_that_takes_context_sees_its_attempt():
    result = flaky.enqueue(2)
    _running(result, attempts=3)

    returned = get_task_type(flaky.module_path).body(StandInContext(result.id), args=[2], kwargs={})

    assert returned == {"return_value": {"attempt": 3}}


def test_each_function_is_an_internal_type_with_its_limits_queue_and_retries():
    spec = get_task_type(overrun.module_path)
    assert (spec.soft_time_limit, spec.time_limit, spec.public) == (1, 10, False)
    assert spec.celery_task.name == overrun.module_path
    default = get_task_type(ADD)
    assert (default.soft_time_limit, default.time_limit) == (300, 330)
    assert get_task_type(flaky.module_path).retry.backoff_seconds == 0.2
    assert get_task_type(urgent_long.module_path).queue == "long"


def test_queue_and_priority_of_the_call_go_to_the_record():
    result = urgent_long.using(priority=-100, queue_name="default").enqueue()

    record = TaskRecord.objects.get(pk=result.id)
    assert (record.queue, record.priority) == ("default", 0)
    assert result.task.queue_name == "default"


@pytest.mark.parametrize(
    ("django", "ours"), [(-100, 0), (-21, 3), (-1, 4), (0, 5), (1, 6), (26, 7), (100, 9)]
)
def test_django_priorities_map_onto_ours_in_order(django, ours):
    assert pipeline_priority(django) == ours


def test_priorities_keep_their_order():
    mapped = [pipeline_priority(priority) for priority in range(-100, 101)]
    assert mapped == sorted(mapped) and set(mapped) == set(range(10))


def test_run_after_is_refused_as_unsupported():
    with pytest.raises(InvalidTaskError, match="run_after"):
        add.using(run_after=timezone.now() + datetime.timedelta(minutes=1))


def test_an_unknown_queue_is_refused():
    with pytest.raises(InvalidTaskError, match="Queue"):
        add.using(queue_name="nowhere")


async def coroutine_function() -> None:
    pass


def function_outside_tasks_py() -> None:
    pass


def test_coroutines_are_refused_as_unsupported():
    with pytest.raises(InvalidTaskError, match="async"):
        task(coroutine_function)


def test_a_function_outside_an_apps_tasks_py_is_refused():
    with pytest.raises(InvalidTaskError, match="tasks.py"):
        task(function_outside_tasks_py)


def test_the_owner_sees_the_task_on_the_dashboard(user, client):
    with enqueue_for(user):
        result = add.enqueue(2, 3)
    client.force_login(user)

    page = client.get(f"/tasks/{result.id}/")

    assert page.status_code == 200
    assert ADD in page.content.decode()


def test_staff_see_the_task_in_the_admin(admin_client):
    result = add.enqueue(2, 3)

    page = admin_client.get(f"/admin/tasks_app/taskrecord/{result.id}/change/")

    assert page.status_code == 200
    assert ADD in page.content.decode()


def test_the_shipped_example_counts_words_and_is_enqueued_as_a_task():
    assert count_words.call("the quick brown fox") == {"words": 4}
    record = TaskRecord.objects.get(pk=count_words.enqueue("a b").id)
    assert record.task_type == "tasks_app.tasks.count_words"


def test_a_worker_for_one_queue_still_takes_tasks_of_every_shipped_queue(settings):
    """A worker dedicated to one queue (TASKS_QUEUES=long) imports every @task function:
    one naming another queue must not stop it from starting."""
    from tasks_app.tasks_backend import PipelineBackend

    settings.TASKS_QUEUES = ["long"]
    backend = PipelineBackend("default", {})
    assert {"default", "long"} <= backend.queues
    backend.validate_task(count_words)
