"""Django's Tasks API end to end: ``@task`` functions enqueued from Django code, published by
the relay, run by a real worker, read back with ``get_result()`` and through the API."""

import time
import uuid

import pytest
from django.db import transaction
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from tasks_app.errors import TransientTaskError
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tasks_app.tasks_backend import enqueue_for
from tests.conftest import client_for
from tests.django_tasks_app.tasks import ReportFailure, add, fail, flaky, overrun, user_exists
from tests.factories import UserFactory

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


def until_finished(result, *, timeout: float = 30.0):
    """Refresh ``result`` until it is SUCCESSFUL or FAILED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result.refresh()
        if result.is_finished:
            return result
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting; last status {result.status}")


def test_an_enqueued_task_runs_and_its_result_has_the_return_value(live, celery_worker):
    result = add.enqueue(2, b=3)

    until_finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.errors == [] and result.attempts == 1
    assert result.worker_ids[0].startswith("test-")
    assert result.started_at <= result.finished_at
    assert add.get_result(result.id).return_value == 5  # a fresh read, as another process would


def test_a_failing_task_ends_failed_with_its_error_and_a_dead_letter(live):
    result = fail.enqueue("the report is on fire")

    until_finished(result)

    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class for error in result.errors] == [ReportFailure]
    assert "the report is on fire" in result.errors[0].traceback
    with pytest.raises(ValueError):
        _ = result.return_value
    assert TaskRecord.objects.get(pk=result.id).status == TaskStatus.FAILED
    assert DeadLetter.objects.filter(task_id=result.id).exists()


def test_transient_errors_are_retried_until_the_task_succeeds(live):
    result = flaky.enqueue(2)

    until_finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 3}
    assert result.attempts == 3
    assert [error.exception_class for error in result.errors] == [TransientTaskError] * 2


def test_a_task_past_its_time_limit_fails_with_a_dead_letter(live):
    result = overrun.enqueue(30)

    until_finished(result, timeout=20)

    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in result.errors] == [
        "celery.exceptions.TimeLimitExceeded"
    ]
    assert TaskRecord.objects.get(pk=result.id).status == TaskStatus.TIMED_OUT
    assert DeadLetter.objects.filter(task_id=result.id).exists()


def test_a_task_enqueued_in_a_transaction_runs_only_after_its_commit(live, celery_worker):
    username = f"new-{uuid.uuid4().hex[:6]}"
    with transaction.atomic():
        UserFactory(username=username)
        result = user_exists.enqueue(username)
        # The relay and the worker run meanwhile; nothing committed, nothing for them.
        time.sleep(2)
        record = TaskRecord.objects.get(pk=result.id)
        assert (record.status, record.dispatched_at) == (TaskStatus.QUEUED, None)
        assert result.id not in celery_worker.log()

    until_finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value is True  # it ran after the commit: the user was there


def test_a_rolled_back_transaction_enqueues_nothing(live, celery_worker):
    with pytest.raises(Boom):
        with transaction.atomic():
            result = add.enqueue(1, 2)
            raise Boom

    time.sleep(2)

    assert not TaskRecord.objects.filter(pk=result.id).exists()
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(result.id)
    assert result.id not in celery_worker.log()


def test_the_owner_follows_the_task_in_the_api_and_nobody_else_sees_it(live):
    owner = UserFactory(username=f"owner-{uuid.uuid4().hex[:6]}")
    stranger = UserFactory(username=f"stranger-{uuid.uuid4().hex[:6]}")
    with enqueue_for(owner):
        result = add.enqueue(20, 22)
    until_finished(result)

    api = client_for(owner)
    body = api.get(f"/api/v1/tasks/{result.id}/").json()

    assert body["status"] == "succeeded"
    assert body["task_type"] == "tests.django_tasks_app.tasks.add"
    assert body["owner"] == owner.username
    assert body["input"] == {"args": [20, 22], "kwargs": {}}
    assert body["result"] == {"return_value": 42}
    assert client_for(stranger).get(f"/api/v1/tasks/{result.id}/").status_code == 404
