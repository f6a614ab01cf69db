import pytest

from tasks_app import dispatch, services, transitions
from tasks_app.broker import broker_queue_size
from tasks_app.errors import ApiKeyLimitReached, TaskNotCancellable
from tasks_app.models import ApiKey, TaskRecord, TaskStatus
from tasks_app.task_types import get_task_type
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db


def test_submit_writes_a_queued_record_that_the_relay_publishes(user, unread_queue):
    record = services.task_submit(
        owner=user,
        task_type=get_task_type("diagnostics.sleep"),
        input_data={"seconds": 1.0, "steps": 2},
    )

    record.refresh_from_db()
    assert record.status == TaskStatus.QUEUED
    assert (record.queue, record.priority, record.attempts) == (unread_queue, 5, 0)
    # The submit sent nothing: the committed row is the outbox entry.
    assert record.dispatched_at is None and broker_queue_size(unread_queue) == 0
    assert list(TaskRecord.objects.outbox()) == [record]

    assert dispatch.tasks_publish_pending(limit=10) == 1

    record.refresh_from_db()
    assert record.dispatched_at is not None and broker_queue_size(unread_queue) == 1
    assert dispatch.tasks_publish_pending(limit=10) == 0  # published once


def test_submit_uses_the_requested_priority(user):
    record = services.task_submit(
        owner=user, task_type=get_task_type("diagnostics.fail"), input_data={}, priority=9
    )
    assert record.priority == 9


def test_claim_takes_a_queued_record_once():
    record = TaskRecordFactory()

    first = transitions.task_claim(task_id=str(record.pk), worker="w1")
    second = transitions.task_claim(task_id=str(record.pk), worker="w2")

    assert first is not None and first.status == TaskStatus.RUNNING
    assert (first.attempts, first.worker) == (1, "w1")
    assert first.started_at is not None
    assert second is None


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "cancelled", "timed_out"])
def test_claim_refuses_a_record_that_is_not_waiting(status):
    record = TaskRecordFactory(status=status)

    assert transitions.task_claim(task_id=str(record.pk), worker="w1") is None
    record.refresh_from_db()
    assert record.status == status


def test_claim_of_a_retrying_record_counts_another_attempt():
    record = TaskRecordFactory(status=TaskStatus.RETRYING, attempts=1)

    claimed = transitions.task_claim(task_id=str(record.pk), worker="w1")

    assert claimed.attempts == 2


def test_progress_of_a_running_task_is_stored():
    record = TaskRecordFactory(status=TaskStatus.RUNNING)

    assert transitions.task_report_progress(task_id=record.pk, current=2, total=5, message="two")

    record.refresh_from_db()
    assert (record.progress_current, record.progress_total, record.progress_message) == (
        2,
        5,
        "two",
    )
    assert record.heartbeat_at is not None


def test_progress_of_a_cancelled_task_is_refused_so_the_body_stops():
    record = TaskRecordFactory(status=TaskStatus.CANCELLED)

    assert not transitions.task_report_progress(task_id=record.pk, current=1, total=5)


@pytest.mark.parametrize("status", ["queued", "running", "retrying"])
def test_cancel_of_an_unfinished_task_cancels_it(status, django_capture_on_commit_callbacks):
    record = TaskRecordFactory(status=status)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cancelled = services.task_cancel(record=record)

    assert cancelled.status == TaskStatus.CANCELLED
    assert cancelled.cancel_requested_at is not None and cancelled.finished_at is not None
    # No revoke: the record is the cancel, and the task's watch sees it. Nothing else
    # runs after commit: the owner has nothing waiting for the freed slot.
    assert callbacks == []


def test_cancel_admits_the_owners_waiting_task_into_the_freed_slot(
    settings, django_capture_on_commit_callbacks
):
    settings.TASKS_MAX_RUNNING_PER_USER = 1
    running = TaskRecordFactory(status=TaskStatus.RUNNING)
    waiting = TaskRecordFactory(owner=running.owner, status=TaskStatus.WAITING)

    with django_capture_on_commit_callbacks(execute=True):
        services.task_cancel(record=running)

    waiting.refresh_from_db()
    assert waiting.status == TaskStatus.QUEUED


def test_cancel_twice_is_harmless(django_capture_on_commit_callbacks):
    record = TaskRecordFactory(status=TaskStatus.QUEUED)
    services.task_cancel(record=record)
    first_time = TaskRecord.objects.get(pk=record.pk).cancel_requested_at

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = services.task_cancel(record=record)

    assert again.status == TaskStatus.CANCELLED
    assert again.cancel_requested_at == first_time
    assert callbacks == []


@pytest.mark.parametrize("status", ["succeeded", "failed", "timed_out"])
def test_cancel_of_a_finished_task_raises_with_its_status(status):
    record = TaskRecordFactory(status=status)

    with pytest.raises(TaskNotCancellable) as raised:
        services.task_cancel(record=record)

    assert raised.value.status == status
    record.refresh_from_db()
    assert record.status == status


def test_success_after_cancel_is_dropped():
    record = TaskRecordFactory(status=TaskStatus.CANCELLED)

    assert not transitions.task_mark_succeeded(task_id=record.pk, result={"x": 1})

    record.refresh_from_db()
    assert (record.status, record.result) == ("cancelled", None)


def test_api_key_is_returned_once_and_stored_as_a_digest(user):
    api_key, raw_key = services.api_key_create(owner=user, name="ci")

    assert raw_key.startswith(f"jsk_{api_key.prefix}_")
    assert raw_key not in (api_key.key_digest, api_key.prefix)
    assert api_key.key_digest == api_key.digest(raw_key)


def test_api_key_revoke_is_final_and_harmless_twice(user):
    api_key, _ = services.api_key_create(owner=user, name="ci")

    first = services.api_key_revoke(api_key=api_key).revoked_at
    second = services.api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk)).revoked_at

    assert first is not None
    assert second == first


def test_revoked_keys_do_not_count_against_the_limit(user, settings):
    settings.API_KEYS_MAX_PER_USER = 1
    old, _ = services.api_key_create(owner=user, name="old")
    with pytest.raises(ApiKeyLimitReached):
        services.api_key_create(owner=user, name="new")

    services.api_key_revoke(api_key=old)

    assert services.api_key_create(owner=user, name="new")[0].name == "new"
