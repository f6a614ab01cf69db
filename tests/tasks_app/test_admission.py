"""Fair use: past TASKS_MAX_RUNNING_PER_USER tasks wait unsent; past the active limit, 429."""

import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tasks_app import recovery, services, transitions
from tasks_app.errors import ActiveTaskLimitReached
from tasks_app.models import TaskQuota, TaskRecord, TaskStatus
from tasks_app.task_types import get_task_type
from tests.concurrency import call_at_once
from tests.conftest import client_for
from tests.factories import TaskRecordFactory, UserFactory

TASKS = "/api/v1/tasks/"
SUBMISSION = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}


@pytest.fixture(autouse=True)
def _messages_to_an_unread_queue(unread_queue):
    """A worker left running must not run (and finish, and admit more of) these tasks."""


def submit(api, priority=None) -> dict:
    body = dict(SUBMISSION)
    if priority is not None:
        body["priority"] = priority
    response = api.post(TASKS, body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def statuses_of(owner) -> list[str]:
    return list(
        TaskRecord.objects.filter(owner=owner)
        .order_by("created_at")
        .values_list("status", flat=True)
    )


@override_settings(TASKS_MAX_RUNNING_PER_USER=2)
def test_past_the_running_limit_tasks_wait_without_a_message(api, user, other_api):
    answers = [submit(api) for _ in range(4)]

    assert [answer["status"] for answer in answers] == ["queued", "queued", "waiting", "waiting"]
    waiting = TaskRecord.objects.filter(owner=user, status=TaskStatus.WAITING)
    assert all(record.dispatched_at is None for record in waiting)
    assert len(api.get(f"{TASKS}?status=waiting").json()["results"]) == 2
    # Another user is not held back by this one's backlog.
    assert submit(other_api)["status"] == "queued"


@override_settings(TASKS_MAX_RUNNING_PER_USER=2)
def test_a_finished_task_admits_the_most_urgent_then_oldest_waiting_one(
    api, user, django_capture_on_commit_callbacks
):
    first = submit(api)
    submit(api)
    old_normal = submit(api, priority=5)
    urgent = submit(api, priority=9)
    assert TaskRecord.objects.get(pk=urgent["id"]).status == TaskStatus.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        transitions.task_claim(task_id=first["id"], worker="w1")
        transitions.task_mark_succeeded(task_id=first["id"], result={})

    admitted = TaskRecord.objects.get(pk=urgent["id"])
    assert admitted.status == TaskStatus.QUEUED
    assert admitted in TaskRecord.objects.outbox()  # the relay sends its message
    assert TaskRecord.objects.get(pk=old_normal["id"]).status == TaskStatus.WAITING


@override_settings(TASKS_MAX_RUNNING_PER_USER=1)
def test_cancelling_a_waiting_task_frees_no_slot(api, user, django_capture_on_commit_callbacks):
    submit(api)
    second, third = submit(api), submit(api)

    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"{TASKS}{second['id']}/cancel/").status_code == 200

    assert statuses_of(user) == ["queued", "cancelled", "waiting"]
    assert TaskRecord.objects.get(pk=third["id"]).dispatched_at is None


@override_settings(TASKS_MAX_ACTIVE_PER_USER=3)
def test_past_the_active_limit_a_submit_answers_429_naming_it(api, user, other_api):
    for _ in range(3):
        submit(api)

    refused = api.post(TASKS, SUBMISSION, format="json")

    assert refused.status_code == 429
    assert refused.json()["limit"] == 3
    assert "TASKS_MAX_ACTIVE_PER_USER" in refused.json()["detail"]
    assert TaskRecord.objects.filter(owner=user).count() == 3
    assert submit(other_api)["status"] == "queued"


@override_settings(TASKS_MAX_ACTIVE_PER_USER=1, TASKS_MAX_RUNNING_PER_USER=1)
def test_a_users_quota_overrides_the_defaults(api, user):
    TaskQuota.objects.create(user=user, max_active=5, max_running=3)

    answers = [submit(api) for _ in range(5)]

    assert [answer["status"] for answer in answers] == ["queued"] * 3 + ["waiting"] * 2
    assert api.post(TASKS, SUBMISSION, format="json").status_code == 429


@override_settings(TASKS_MAX_RUNNING_PER_USER=2)
def test_reconciliation_admits_what_a_dead_finisher_left_waiting(
    api, user, django_capture_on_commit_callbacks
):
    first = submit(api)
    submit(api)
    waiting = submit(api)
    # The finish committed, and its process died before its admission ran.
    TaskRecord.objects.filter(pk=first["id"]).update(status=TaskStatus.SUCCEEDED)

    with django_capture_on_commit_callbacks(execute=True):
        counts = recovery.tasks_reconcile()

    assert counts["admitted"] == 1
    record = TaskRecord.objects.get(pk=waiting["id"])
    assert record.status == TaskStatus.QUEUED and record in TaskRecord.objects.outbox()


@pytest.mark.django_db(transaction=True)
@override_settings(TASKS_MAX_RUNNING_PER_USER=4)
def test_tasks_finishing_at_once_never_admit_past_the_limit(unread_queue):
    owner = UserFactory()
    running = [
        TaskRecordFactory(owner=owner, status=TaskStatus.RUNNING, queue=unread_queue)
        for _ in range(4)
    ]
    for _ in range(10):
        TaskRecordFactory(owner=owner, status=TaskStatus.WAITING, queue=unread_queue)
    start = threading.Barrier(len(running))
    errors = []

    def finish(record):
        try:
            start.wait()
            transitions.task_mark_succeeded(task_id=record.pk, result={})
        except Exception as error:  # reported below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(record,)) for record in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert statuses_of(owner).count(TaskStatus.QUEUED) == 4
    assert statuses_of(owner).count(TaskStatus.WAITING) == 6


@pytest.mark.django_db(transaction=True)
def test_submits_at_once_never_pass_either_limit(unread_queue):
    """Each submit counts the owner's tasks after taking the owner's lock, so a submit that
    waited for the lock sees what the ones before it committed."""
    owner = UserFactory()
    TaskQuota.objects.create(user=owner, max_active=5, max_running=2)
    submitters = 12

    def submit():
        return services.task_submit(
            owner=owner, task_type=get_task_type("diagnostics.sleep"), input_data={}
        )

    outcomes = call_at_once(submit, times=submitters)

    refused = [outcome for outcome in outcomes if isinstance(outcome, ActiveTaskLimitReached)]
    errors = [
        outcome
        for outcome in outcomes
        if isinstance(outcome, Exception) and not isinstance(outcome, ActiveTaskLimitReached)
    ]
    assert errors == []
    assert len(refused) == submitters - 5
    assert sorted(statuses_of(owner)) == ["queued"] * 2 + ["waiting"] * 3


def test_a_requeued_dead_letter_is_not_refused_by_the_active_limit(user, staff_user):
    dead = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING)
    transitions.task_mark_failed(task_id=dead.pk, error_type="E", error_message="boom")
    api = client_for(user)
    with override_settings(TASKS_MAX_ACTIVE_PER_USER=1):
        submit(api)
        letter = dead.dead_letter
        response = client_for(staff_user).post(f"/api/v1/dead-letters/{letter.pk}/requeue/")

    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement submit")
def test_a_submit_outside_a_transaction_is_one_round_trip_storing_what_the_orm_would(
    unread_queue,
):
    owner = UserFactory()
    TaskQuota.objects.create(user=owner, max_active=3, max_running=1)
    sleep = get_task_type("diagnostics.sleep")

    def submit(**options):
        return services.task_submit(
            owner=owner, task_type=sleep, input_data={"seconds": 0, "note": "é ✓"}, **options
        )

    with CaptureQueriesContext(connection) as queries:
        first = submit(priority=7, idempotency_key="key-1", request_fingerprint="f" * 64)
    second = submit()
    third = submit()
    with pytest.raises(ActiveTaskLimitReached) as refused:
        submit()
    past_the_limit = submit(enforce_active_limit=False)  # staff requeueing a dead letter

    assert len(queries) == 1
    assert refused.value.limit == 3
    stored = TaskRecord.objects.get(pk=first.pk)
    assert (stored.status, first.status) == (TaskStatus.QUEUED, TaskStatus.QUEUED)
    assert (stored.owner_id, stored.task_type, stored.queue) == (owner.pk, sleep.name, unread_queue)
    assert (stored.priority, stored.input) == (7, {"seconds": 0, "note": "é ✓"})
    assert (stored.idempotency_key, stored.request_fingerprint) == ("key-1", "f" * 64)
    assert stored.created_at == first.created_at and stored.dispatched_at is None
    assert [second.status, third.status, past_the_limit.status] == [TaskStatus.WAITING] * 3
    assert statuses_of(owner) == ["queued", "waiting", "waiting", "waiting"]
    assert not first._state.adding
