import pytest
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from tasks_app.models import FINAL_STATUSES, TRANSITIONS, TaskRecord, TaskStatus
from tests.factories import TaskRecordFactory


def test_every_status_has_a_row_in_the_state_machine():
    assert set(TRANSITIONS) == set(TaskStatus.values)


def test_final_statuses_are_the_ones_without_a_way_out():
    assert FINAL_STATUSES == {"succeeded", "failed", "cancelled", "timed_out"}


@pytest.mark.django_db
def test_transition_allowed_from_current_status_updates_the_row():
    record = TaskRecordFactory(status=TaskStatus.QUEUED)

    assert TaskRecord.objects.transition(pk=record.pk, to=TaskStatus.RUNNING, worker="w1")

    record.refresh_from_db()
    assert (record.status, record.worker) == ("running", "w1")


@pytest.mark.django_db
def test_transition_returning_gives_the_row_as_the_update_left_it():
    record = TaskRecordFactory(status=TaskStatus.QUEUED, input={"pages": [1, 2]}, attempts=2)
    started = timezone.now()

    moved = TaskRecord.objects.transition_returning(
        pk=record.pk, to=TaskStatus.RUNNING, attempts=F("attempts") + 1, started_at=started
    )

    assert moved == TaskRecord.objects.get(pk=record.pk)  # the same row, not a copy of it
    assert (moved.pk, moved.status, moved.attempts) == (record.pk, TaskStatus.RUNNING, 3)
    assert moved.input == {"pages": [1, 2]}  # decoded as a SELECT would
    assert moved.started_at == started
    assert moved.owner_id == record.owner_id
    assert TaskRecord.objects.get(pk=record.pk).attempts == 3


@pytest.mark.django_db
def test_transition_returning_computes_annotations_about_the_moved_row_in_its_statement():
    record = TaskRecordFactory(status=TaskStatus.RUNNING)
    TaskRecordFactory(owner=record.owner, status=TaskStatus.WAITING)
    alone = TaskRecordFactory(status=TaskStatus.RUNNING)
    has_waiting = Exists(
        TaskRecord.objects.filter(owner_id=OuterRef("owner_id"), status=TaskStatus.WAITING)
    )

    finished = [
        TaskRecord.objects.transition_returning(
            pk=pk, to=TaskStatus.SUCCEEDED, annotations={"owner_has_waiting": has_waiting}
        )
        for pk in (record.pk, alone.pk)
    ]

    assert [moved.owner_has_waiting for moved in finished] == [True, False]
    assert [moved.status for moved in finished] == [TaskStatus.SUCCEEDED] * 2


@pytest.mark.django_db
def test_transition_returning_refused_is_none_and_changes_nothing():
    running = TaskRecordFactory(status=TaskStatus.RUNNING, attempts=1)
    finished = TaskRecordFactory(status=TaskStatus.SUCCEEDED)

    assert TaskRecord.objects.transition_returning(pk=finished.pk, to="running") is None
    assert (
        TaskRecord.objects.transition_returning(
            pk=running.pk, to=TaskStatus.SUCCEEDED, only_if=Q(attempts=2)
        )
        is None
    )
    assert TaskRecord.objects.get(pk=finished.pk).status == TaskStatus.SUCCEEDED
    assert TaskRecord.objects.get(pk=running.pk).status == TaskStatus.RUNNING


@pytest.mark.django_db
@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_transition_out_of_a_final_status_is_refused(final):
    record = TaskRecordFactory(status=final)

    for target in TaskStatus.values:
        assert not TaskRecord.objects.transition(pk=record.pk, to=target)

    record.refresh_from_db()
    assert record.status == final


@pytest.mark.django_db
def test_progress_percent_is_none_without_total_and_capped_at_100():
    assert TaskRecordFactory(progress_total=None).progress_percent is None
    assert TaskRecordFactory(progress_current=3, progress_total=4).progress_percent == 75.0
    assert TaskRecordFactory(progress_current=9, progress_total=4).progress_percent == 100.0


@pytest.mark.django_db
def test_the_owners_lists_and_staffs_list_each_have_their_index_and_the_owner_no_other():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TaskRecord._meta.db_table)
    indexes = {
        name: details["columns"]
        for name, details in constraints.items()
        if details["index"] and not details["primary_key"]
    }

    assert indexes["task_owner_created"] == ["owner_id", "created_at"]
    assert indexes["task_owner_status"] == ["owner_id", "status", "created_at"]
    assert indexes["task_owner_type"] == ["owner_id", "task_type", "created_at"]
    assert indexes["task_created"] == ["created_at", "id"]
    # Migration 0009 dropped the foreign key's own index: task_owner_created serves it.
    assert ["owner_id"] not in indexes.values()


@pytest.mark.django_db
def test_transition_returning_only_named_fields_defers_the_others():
    record = TaskRecordFactory(status=TaskStatus.RUNNING)

    moved = TaskRecord.objects.transition_returning(
        pk=record.pk, to=TaskStatus.SUCCEEDED, returning=("owner",), result={"big": "x" * 10}
    )

    assert (moved.pk, moved.owner_id) == (record.pk, record.owner_id)
    assert moved.get_deferred_fields() >= {"result", "input", "status"}
    assert moved.result == {"big": "x" * 10}  # a deferred field still loads when asked
    assert TaskRecord.objects.get(pk=record.pk).status == TaskStatus.SUCCEEDED


@pytest.mark.django_db
def test_a_move_of_one_shape_gives_each_call_its_own_values_and_condition():
    # The second and third calls reuse the statement the first compiled: only their values
    # differ (compiled_moves.py), and each row gets its own.
    records = [TaskRecordFactory(status=TaskStatus.RUNNING, attempts=n) for n in (1, 2, 3)]

    moved = [
        TaskRecord.objects.transition_returning(
            pk=record.pk,
            to=TaskStatus.FAILED,
            only_if=Q(attempts=record.attempts),
            error_message=f"boom {record.attempts}",
            result={"attempt": record.attempts},
            progress_current=F("attempts") * 10,
        )
        for record in records
    ]
    refused = TaskRecord.objects.transition_returning(
        pk=TaskRecordFactory(status=TaskStatus.RUNNING, attempts=4).pk,
        to=TaskStatus.FAILED,
        only_if=Q(attempts=5),
        error_message="not this attempt",
        result={},
        progress_current=F("attempts") * 10,
    )

    rows = TaskRecord.objects.filter(pk__in=[r.pk for r in records]).order_by("attempts")
    expected = [("failed", f"boom {n}", {"attempt": n}, n * 10) for n in (1, 2, 3)]
    assert [(m.status, m.error_message, m.result, m.progress_current) for m in moved] == expected
    assert [(r.status, r.error_message, r.result, r.progress_current) for r in rows] == expected
    assert refused is None


@pytest.mark.django_db
def test_moves_of_different_shapes_are_not_mistaken_for_one_another():
    first, second, third = (TaskRecordFactory(status=TaskStatus.RUNNING, attempts=2) for _ in "abc")

    with_condition = TaskRecord.objects.transition_returning(
        pk=first.pk, to=TaskStatus.SUCCEEDED, only_if=Q(attempts=1), worker="a"
    )
    without_condition = TaskRecord.objects.transition_returning(
        pk=first.pk, to=TaskStatus.SUCCEEDED, worker="a"
    )
    other_fields = TaskRecord.objects.transition_returning(
        pk=second.pk, to=TaskStatus.SUCCEEDED, error_message="kept apart"
    )
    # A lookup whose SQL depends on its value is compiled for each call, as any query.
    other_lookup = TaskRecord.objects.transition_returning(
        pk=third.pk, to=TaskStatus.FAILED, only_if=Q(attempts__in=[1, 2]), worker="c"
    )

    assert with_condition is None
    assert (without_condition.status, without_condition.worker) == ("succeeded", "a")
    assert (other_fields.error_message, other_fields.worker) == ("kept apart", second.worker)
    assert (other_lookup.status, other_lookup.worker) == ("failed", "c")
