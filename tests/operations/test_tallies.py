from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.utils import timezone

from operations import tallies
from operations.models import TaskTally, TaskTallyMark
from tasks_app.models import TaskRecord
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

SLEEP, COUNT = "diagnostics.sleep", "diagnostics.count"


def finished(task_type=SLEEP, status="succeeded", *, ago: timedelta, ran: float | None = 1.0):
    finished_at = timezone.now() - ago
    started_at = None if ran is None else finished_at - timedelta(seconds=ran)
    return TaskRecordFactory(
        task_type=task_type, status=status, started_at=started_at, finished_at=finished_at
    )


@pytest.fixture
def history():
    """Records finished a day, two hours, an hour and a minute ago."""
    for ago, ran in [(timedelta(days=1), 0.3), (timedelta(hours=1), 45), (timedelta(minutes=1), 2)]:
        finished(ago=ago, ran=ran)
        finished(COUNT, "failed", ago=ago)
    finished(ago=timedelta(hours=2), ran=None)  # succeeded without a start: no duration
    finished(COUNT, "cancelled", ago=timedelta(minutes=2), ran=None)
    TaskRecordFactory(status="running")  # not finished: never counted


def as_dicts(totals: list[tallies.FinishedTotal]) -> dict:
    return {
        (total.task_type, total.status): (
            total.count,
            total.timed_count,
            round(total.duration_seconds_sum, 6),
            total.duration_buckets,
        )
        for total in totals
    }


def test_totals_count_every_finished_record_with_the_durations_of_succeeded_ones(history):
    totals = as_dicts(tallies.finished_totals())

    assert set(totals) == {(COUNT, "cancelled"), (COUNT, "failed"), (SLEEP, "succeeded")}
    assert totals[(COUNT, "failed")][:2] == (3, 0)
    assert totals[(COUNT, "cancelled")][:2] == (1, 0)
    count, timed, seconds, buckets = totals[(SLEEP, "succeeded")]
    assert (count, timed, seconds) == (4, 3, 47.3)
    assert [buckets[bound] for bound in ("0.1", "0.5", "1", "2.5", "30", "60", "3600")] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]


def test_totals_are_the_same_wherever_the_mark_stands(history):
    unmarked = as_dicts(tallies.finished_totals())

    for until in (timedelta(days=2), timedelta(hours=3), timedelta(minutes=30), timedelta(0)):
        tallies.tally_advance(until=timezone.now() - until)

        assert as_dicts(tallies.finished_totals()) == unmarked
    assert TaskTally.objects.get(task_type=SLEEP, status="succeeded").count == 4


def test_totals_keep_what_was_tallied_when_its_records_are_deleted(history):
    before = as_dicts(tallies.finished_totals())
    tallies.tally_advance(until=timezone.now() - timedelta(minutes=5))

    TaskRecord.objects.filter(finished_at__lt=timezone.now() - timedelta(minutes=5)).delete()

    assert as_dicts(tallies.finished_totals()) == before


def test_start_latencies_are_the_same_wherever_the_mark_stands():
    """The submit-to-start waits of records that started once, of every final status."""
    for ago, waited, status, attempts in [
        (timedelta(days=1), 0.2, "succeeded", 1),
        (timedelta(hours=1), 40, "failed", 1),
        (timedelta(minutes=1), 3, "succeeded", 1),
        (timedelta(minutes=1), 500, "succeeded", 2),  # retried: not counted
    ]:
        started_at = timezone.now() - ago - timedelta(seconds=1)
        TaskRecordFactory(
            status=status,
            attempts=attempts,
            created_at=started_at - timedelta(seconds=waited),
            started_at=started_at,
            finished_at=started_at + timedelta(seconds=1),
        )

    def waits() -> tuple:
        (total,) = tallies.totals_by_task_type(tallies.finished_totals())
        buckets = total.start_latency_buckets
        return (
            total.started_count,
            round(total.start_latency_seconds_sum, 3),
            [buckets[bound] for bound in ("0.1", "0.25", "2.5", "5", "60", "3600")],
        )

    unmarked = waits()
    for until in (timedelta(days=2), timedelta(minutes=30), timedelta(0)):
        tallies.tally_advance(until=timezone.now() - until)

        assert waits() == unmarked
    assert unmarked == (3, 43.2, [0, 1, 1, 2, 3, 3])


def test_the_mark_never_moves_back():
    later = timezone.now() - timedelta(minutes=10)
    finished(ago=timedelta(hours=1))
    assert tallies.tally_advance(until=later) == later

    finished(ago=timedelta(hours=2))  # too late: behind the mark, never counted
    assert tallies.tally_advance(until=later - timedelta(hours=3)) == later

    assert TaskTallyMark.objects.get().counted_until == later
    assert TaskTally.objects.get().count == 1


def test_a_scrape_advances_the_tally_only_once_per_step():
    now = timezone.now()
    finished(ago=timedelta(hours=1))

    tallies.tally_advance_if_due(now=now)
    mark = TaskTallyMark.objects.get().counted_until
    tallies.tally_advance_if_due(now=now + tallies.TALLY_STEP / 2)
    unmoved = TaskTallyMark.objects.get().counted_until
    tallies.tally_advance_if_due(now=now + tallies.TALLY_STEP * 2)

    assert mark == now - tallies.TALLY_GRACE
    assert unmoved == mark
    assert TaskTallyMark.objects.get().counted_until == now + tallies.TALLY_STEP * 2 - (
        tallies.TALLY_GRACE
    )


def test_the_mark_has_one_row():
    TaskTallyMark.objects.create()

    with pytest.raises(IntegrityError):
        TaskTallyMark.objects.create(id=2)


@pytest.mark.django_db(transaction=True)
def test_the_tally_migration_goes_back_and_forth():
    tables = {TaskTally._meta.db_table, TaskTallyMark._meta.db_table}

    call_command("migrate", "operations", "0003", verbosity=0)
    assert not tables & set(connection.introspection.table_names())
    call_command("migrate", "operations", verbosity=0)

    assert tables <= set(connection.introspection.table_names())
    assert tallies.finished_totals() == []
