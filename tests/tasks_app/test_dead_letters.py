import pytest

from tasks_app import dead_letters, services, transitions
from tasks_app.errors import DeadLetterResolved
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tests.conftest import client_for
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

DEAD_LETTERS = "/api/v1/dead-letters/"


def fail_for_good(record, *, attempts: int = 1) -> DeadLetter:
    """Run ``record`` through ``attempts`` claims, retrying all but the last failure."""
    for attempt in range(1, attempts + 1):
        transitions.task_claim(task_id=str(record.pk), worker="w1")
        error = {"error_type": "Boom", "error_message": f"boom {attempt}", "attempt": attempt}
        if attempt < attempts:
            transitions.task_mark_retrying(task_id=str(record.pk), countdown=attempt, **error)
        else:
            transitions.task_mark_failed(task_id=str(record.pk), **error)
    return DeadLetter.objects.get(task=record)


def test_a_failed_task_leaves_one_dead_letter_with_every_attempt(user):
    record = TaskRecordFactory(owner=user, task_type="diagnostics.flaky", input={"failures": 9})

    dead_letter = fail_for_good(record, attempts=3)

    assert DeadLetter.objects.count() == 1
    assert (dead_letter.owner, dead_letter.task_type) == (user, "diagnostics.flaky")
    assert dead_letter.input == {"failures": 9}
    assert (dead_letter.final_status, dead_letter.error_message) == ("failed", "boom 3")
    assert [a["attempt"] for a in dead_letter.attempts] == [1, 2, 3]
    assert [a["retry_in"] for a in dead_letter.attempts] == [1, 2, None]
    assert dead_letter.resolution == "open"


def test_timed_out_tasks_are_dead_lettered_and_cancelled_ones_are_not(user):
    timed_out, cancelled = TaskRecordFactory(owner=user), TaskRecordFactory(owner=user)
    transitions.task_claim(task_id=str(timed_out.pk), worker="w1")

    transitions.task_mark_timed_out(task_id=str(timed_out.pk), error_message="too slow")
    services.task_cancel(record=cancelled)

    assert list(DeadLetter.objects.values_list("task_id", "final_status")) == [
        (timed_out.pk, "timed_out")
    ]


def test_a_worker_from_an_earlier_attempt_cannot_finish_the_task():
    record = TaskRecordFactory()
    transitions.task_claim(task_id=str(record.pk), worker="w1")
    TaskRecord.objects.transition(pk=record.pk, to=TaskStatus.QUEUED)  # presumed dead
    transitions.task_claim(task_id=str(record.pk), worker="w2")  # attempt 2

    assert not transitions.task_mark_succeeded(task_id=str(record.pk), result={}, attempt=1)
    assert not transitions.task_report_progress(
        task_id=str(record.pk), current=1, total=2, attempt=1
    )
    assert transitions.task_mark_succeeded(task_id=str(record.pk), result={}, attempt=2)


def test_requeue_submits_a_new_linked_task_once(user, staff_user):
    record = TaskRecordFactory(owner=user, task_type="diagnostics.fail", input={"message": "x"})
    dead_letter = fail_for_good(record)

    requeued = dead_letters.dead_letter_requeue(dead_letter=dead_letter, by=staff_user)

    new_task = requeued.requeued_task
    assert requeued.resolution == "requeued" and requeued.resolved_by == staff_user
    assert (new_task.status, new_task.owner, new_task.input) == ("queued", user, {"message": "x"})
    assert new_task.requeued_from == record
    assert TaskRecord.objects.outbox().filter(pk=new_task.pk).exists()  # for the relay
    with pytest.raises(DeadLetterResolved):
        dead_letters.dead_letter_requeue(dead_letter=dead_letter, by=staff_user)


def test_discard_closes_the_entry_without_a_new_task(user, staff_user):
    dead_letter = fail_for_good(TaskRecordFactory(owner=user))

    discarded = dead_letters.dead_letter_discard(dead_letter=dead_letter, by=staff_user)

    assert discarded.resolution == "discarded"
    assert TaskRecord.objects.count() == 1
    with pytest.raises(DeadLetterResolved):
        dead_letters.dead_letter_requeue(dead_letter=dead_letter, by=staff_user)


# --- API ----------------------------------------------------------------------------------


def test_dead_letters_are_for_staff_only(api, user):
    fail_for_good(TaskRecordFactory(owner=user))

    assert api.get(DEAD_LETTERS).status_code == 403


def test_staff_list_filter_inspect_requeue_and_discard(staff_user, user):
    client = client_for(staff_user)
    first = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.fail"))
    second = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.sleep"))

    listing = client.get(DEAD_LETTERS, {"task_type": "diagnostics.fail"}).json()
    detail = client.get(f"{DEAD_LETTERS}{first.pk}/").json()
    requeue = client.post(f"{DEAD_LETTERS}{first.pk}/requeue/")
    again = client.post(f"{DEAD_LETTERS}{first.pk}/requeue/")
    discard = client.post(f"{DEAD_LETTERS}{second.pk}/discard/")
    open_ones = client.get(DEAD_LETTERS, {"resolution": "open"}).json()

    assert [row["id"] for row in listing["results"]] == [str(first.pk)]
    assert detail["attempts"][0]["error_message"] == "boom 1"
    assert detail["owner"] == "alice"
    assert requeue.status_code == 200
    assert requeue.json()["resolution"] == "requeued"
    assert requeue.json()["requeued_task"]["id"]
    assert again.status_code == 409 and again.json()["status"] == "requeued"
    assert discard.json()["resolution"] == "discarded"
    assert open_ones["results"] == []


def test_bulk_requeue_reports_each_id(staff_user, user):
    client = client_for(staff_user)
    dead = fail_for_good(TaskRecordFactory(owner=user))
    unknown = "00000000-0000-0000-0000-000000000000"

    response = client.post(
        f"{DEAD_LETTERS}bulk/", {"action": "requeue", "ids": [str(dead.pk), unknown]}, format="json"
    )
    repeated = client.post(
        f"{DEAD_LETTERS}bulk/", {"action": "discard", "ids": [str(dead.pk)]}, format="json"
    )

    assert response.json()["results"] == {str(dead.pk): "requeued", unknown: "not found"}
    assert repeated.json()["results"] == {str(dead.pk): "already requeued"}
    assert (
        client.post(f"{DEAD_LETTERS}bulk/", {"action": "x", "ids": []}, format="json").status_code
        == 400
    )


def test_bulk_discard_answers_discarded(staff_user, user):
    dead = fail_for_good(TaskRecordFactory(owner=user))

    response = client_for(staff_user).post(
        f"{DEAD_LETTERS}bulk/", {"action": "discard", "ids": [str(dead.pk)]}, format="json"
    )

    assert response.json()["results"] == {str(dead.pk): "discarded"}
    dead.refresh_from_db()
    assert dead.resolution == "discarded"


def test_internal_task_types_are_not_requeued_from_here(staff_user, user):
    record = TaskRecordFactory(owner=user, task_type="documents.process", input={})
    dead = fail_for_good(record)

    response = client_for(staff_user).post(f"{DEAD_LETTERS}{dead.pk}/requeue/")

    assert response.status_code == 409
    assert "reprocess" in response.json()["detail"]
    dead.refresh_from_db()
    assert dead.resolution == "open"
