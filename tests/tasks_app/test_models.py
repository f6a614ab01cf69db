import pytest

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
