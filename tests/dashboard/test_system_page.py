"""Staff's system page, and the snapshot figures its charts are drawn from."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.charts import line_chart
from operations import alerts, history
from operations.models import HealthSnapshot
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tests.factories import TaskRecordFactory, UserFactory
from tests.tasks_app.test_dead_letters import fail_for_good


def _text(response) -> str:
    return response.content.decode()


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True))
    return client


def test_the_page_is_a_404_for_everyone_but_staff(browser, user):
    letter = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))

    assert browser.get("/system/").status_code == 404
    assert browser.post(f"/system/dead-letters/{letter.pk}/requeue/").status_code == 404
    assert "/system/" not in _text(browser.get("/tasks/"))
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.OPEN


def test_staff_see_health_queues_running_tasks_dead_letters_and_four_charts(staff, user):
    running = TaskRecordFactory(
        owner=user,
        status=TaskStatus.RUNNING,
        started_at=timezone.now(),
        progress_current=2,
        progress_total=5,
        worker="celery@host-a",
    )
    TaskRecordFactory(owner=user, status=TaskStatus.QUEUED, queue="default")
    letter = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))

    page = _text(staff.get("/system/"))

    for check in ("workers", "beat", "failure_rate", "dead_letters"):
        assert f'id="check-{check}"' in page
    assert 'id="queue-default"' in page and 'id="queue-long"' in page
    queue_row = re.search(r'<tr id="queue-default">.*?</tr>', page, re.S)[0]
    assert "none waiting" not in queue_row  # its oldest queued task's age is shown
    assert f'id="running-{running.pk}"' in page and "celery@host-a" in page
    assert f'id="dead-letter-{letter.pk}"' in page and "Dead letters (1 open)" in page
    assert page.count('<svg class="chart"') == 4
    assert 'role="img"' in page and "<title" in page


def test_requeue_and_discard_from_the_page(staff, user):
    first = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))
    second = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))

    requeued = staff.post(f"/system/dead-letters/{first.pk}/requeue/", follow=True)
    discarded = staff.post(
        f"/system/dead-letters/{second.pk}/discard/",
        {"next": f"/tasks/{second.task_id}/"},
        follow=True,
    )
    again = staff.post(f"/system/dead-letters/{second.pk}/discard/", follow=True)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.resolution == DeadLetter.Resolution.REQUEUED
    assert TaskRecord.objects.get(pk=first.requeued_task_id).requeued_from_id == first.task_id
    assert "is requeued as" in _text(requeued)
    assert second.resolution == DeadLetter.Resolution.DISCARDED
    assert discarded.redirect_chain == [(f"/tasks/{second.task_id}/", 302)]
    assert "already" in _text(again)  # resolved before: said, nothing changes


def test_a_next_page_elsewhere_is_not_followed(staff, user):
    letter = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))

    response = staff.post(
        f"/system/dead-letters/{letter.pk}/discard/", {"next": "https://evil.example/"}
    )

    assert response["Location"] == "/system/"


def test_a_staff_member_sees_the_dead_letter_actions_on_the_tasks_page(staff, browser, user):
    letter = fail_for_good(TaskRecordFactory(owner=user, task_type="diagnostics.flaky"))

    staff_page = _text(staff.get(f"/tasks/{letter.task_id}/"))
    owners_page = _text(browser.get(f"/tasks/{letter.task_id}/"))

    assert f'action="/system/dead-letters/{letter.pk}/requeue/"' in staff_page
    assert "/system/dead-letters/" not in owners_page


def test_a_snapshot_keeps_what_finished_since_the_one_before(db, user):
    now = timezone.now()
    alerts.health_snapshot_record(now=now - timedelta(minutes=1))
    for seconds in (2.0, 4.0):
        TaskRecordFactory(
            owner=user,
            status=TaskStatus.SUCCEEDED,
            started_at=now - timedelta(seconds=30 + seconds),
            finished_at=now - timedelta(seconds=30),
        )
    TaskRecordFactory(owner=user, status=TaskStatus.FAILED, finished_at=now - timedelta(seconds=5))
    TaskRecordFactory(  # before the previous snapshot: counted there, not here
        owner=user, status=TaskStatus.SUCCEEDED, finished_at=now - timedelta(minutes=5)
    )

    figures = alerts.health_snapshot_record(now=now).figures

    assert figures["seconds"] == 60.0
    assert (figures["finished"], figures["failed"]) == (3, 1)
    assert 2.0 <= figures["p95_seconds"]["diagnostics.sleep"] <= 4.0
    assert set(figures["queue_depths"]) == {"default", "long"}


def test_the_day_is_charted_per_minute_in_buckets_with_gaps_where_beat_was_down(db):
    now = timezone.now()
    for minutes_ago in (150, 149, 5):
        HealthSnapshot.objects.create(
            created_at=now - timedelta(minutes=minutes_ago),
            status="healthy",
            figures={
                "seconds": 60.0,
                "finished": 120,
                "failed": 6,
                "p95_seconds": {"diagnostics.sleep": 1.5},
                "queue_depths": {"default": 7, "long": None},
            },
        )

    day = history.day_series(now=now, buckets=24, hours=24)  # one bucket an hour

    assert day.throughput.series[0].values[-1] == 120.0  # 120 in 60 s: per minute
    assert day.throughput.series[0].values[21] == 120.0  # two minutes, 240 in 120 s
    assert day.throughput.series[0].values[0] is None  # no snapshot: a gap, not a zero
    assert day.failure_rate.series[0].values[-1] == 5.0
    assert [series.name for series in day.p95_duration.series] == ["diagnostics.sleep"]
    depth = {series.name: series.values for series in day.queue_depth.series}
    assert depth["default"][-1] == 7 and depth["long"][-1] is None


def test_a_chart_draws_each_run_of_values_and_escapes_its_names():
    chart = history.Chart(
        "Queue <depth>",
        "messages",
        [history.Series("<script>", [None, 1.0, 3.0, None, 2.0, 2.5])],
    )
    starts = [timezone.now() + timedelta(hours=hour) for hour in range(6)]

    svg = str(line_chart(chart, starts, chart_id="c"))

    assert svg.count("<polyline") == 2  # broken at the gap
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "Queue &lt;depth&gt;" in svg
    assert ">5<" in svg  # the y axis tops at a round 5 over a largest value of 3
