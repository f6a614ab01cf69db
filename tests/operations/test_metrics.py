from datetime import timedelta

import pytest
from celery import current_app
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from operations import metrics
from tests.conftest import client_for
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

METRICS = "/api/v1/tasks/metrics"
SLEEP, COUNT = "diagnostics.sleep", "diagnostics.count"


@pytest.fixture(autouse=True)
def broker_down():
    """No broker in these tests (nothing listens on port 1), unless a test says otherwise:
    queue depths are unknown."""
    current_app.conf.broker_read_url = "redis://127.0.0.1:1/0"
    yield
    current_app.conf.broker_read_url = None


def make_task(owner, task_type, status, *, ago, ran=None, attempts=1):
    """A record created ``ago`` before now that, if ``ran`` is given, ran exactly that long."""
    created_at = timezone.now() - ago
    started_at = finished_at = None
    if ran is not None:
        started_at = created_at + timedelta(seconds=1)
        finished_at = started_at + ran
    return TaskRecordFactory(
        owner=owner,
        task_type=task_type,
        status=status,
        attempts=attempts,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
    )


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@pytest.fixture
def mix(user, other_user):
    """alice's and bob's tasks; the last two were created outside a 24 h window."""
    hour = timedelta(hours=1)
    for ran, attempts in [(1, 1), (2, 2), (3, 1), (4, 1)]:
        make_task(user, SLEEP, "succeeded", ago=hour, ran=seconds(ran), attempts=attempts)
    make_task(user, SLEEP, "failed", ago=2 * hour, ran=seconds(7), attempts=3)
    make_task(user, COUNT, "cancelled", ago=3 * hour)
    make_task(other_user, SLEEP, "succeeded", ago=hour / 2, ran=seconds(10))
    make_task(other_user, COUNT, "succeeded", ago=hour, ran=seconds(0.5))
    make_task(other_user, COUNT, "timed_out", ago=hour, ran=seconds(60))
    make_task(other_user, SLEEP, "queued", ago=hour / 6)
    # Outside 24 h, inside 7 days:
    make_task(user, SLEEP, "running", ago=timedelta(days=3))
    make_task(other_user, SLEEP, "succeeded", ago=timedelta(days=2), ran=seconds(100))


def test_staff_see_every_owners_tasks_of_the_last_24_hours(staff_user, mix):
    response = client_for(staff_user).get(METRICS)

    assert response.status_code == 200
    body = response.json()
    assert body["window"]["seconds"] == 86400
    assert body["scope"] == "all"
    assert body["total"] == 10
    assert body["by_status"] == {
        "waiting": 0,
        "queued": 1,
        "running": 0,
        "retrying": 0,
        "succeeded": 6,
        "failed": 1,
        "cancelled": 1,
        "timed_out": 1,
    }
    assert body["finished"] == 9
    assert body["success_rate"] == round(6 / 9, 4)
    assert body["failure_rate"] == round(2 / 9, 4)  # failed and timed out
    assert (body["retries"], body["retried_tasks"]) == (1 + 2, 2)
    assert body["cancellations"] == 1
    assert body["running"] == 1  # running now, although created 3 days ago
    assert body["queue_depths"] == {"default": None, "long": None}
    assert body["task_types"] == {
        COUNT: {
            "count": 3,
            "succeeded": 1,
            "failed": 0,
            "timed_out": 1,
            "cancelled": 1,
            "duration_seconds": {"p50": 0.5, "p95": 0.5, "max": 0.5},
        },
        SLEEP: {
            "count": 7,
            "succeeded": 5,
            "failed": 1,
            "timed_out": 0,
            "cancelled": 0,
            # Succeeded only: 1, 2, 3, 4 and 10 s; p95 lies 80% of the way from 4 to 10.
            "duration_seconds": {"p50": 3.0, "p95": 8.8, "max": 10.0},
        },
    }


def test_users_see_only_their_own_tasks_and_no_queues(api, mix):
    body = api.get(METRICS).json()

    assert body["scope"] == "own"
    assert body["total"] == 6
    assert body["by_status"]["succeeded"] == 4
    assert body["by_status"]["failed"] == 1
    assert body["by_status"]["cancelled"] == 1
    assert body["by_status"]["queued"] == body["by_status"]["timed_out"] == 0
    assert body["success_rate"] == round(4 / 6, 4)
    assert body["failure_rate"] == round(1 / 6, 4)
    assert (body["retries"], body["retried_tasks"]) == (3, 2)
    assert body["running"] == 1
    assert body["queue_depths"] is None
    assert body["task_types"][SLEEP]["count"] == 5
    # 1, 2, 3, 4 s: p50 halfway between 2 and 3, p95 85% of the way from 3 to 4.
    assert body["task_types"][SLEEP]["duration_seconds"] == {"p50": 2.5, "p95": 3.85, "max": 4.0}
    assert body["task_types"][COUNT]["duration_seconds"] == {"p50": None, "p95": None, "max": None}


def test_a_wider_window_takes_in_older_tasks(staff_user, mix):
    body = client_for(staff_user).get(METRICS, {"window": "7d"}).json()

    assert body["window"]["seconds"] == 7 * 86400
    assert body["total"] == 12
    assert body["by_status"]["running"] == 1
    # 1, 2, 3, 4, 10 and 100 s.
    assert body["task_types"][SLEEP]["duration_seconds"] == {"p50": 3.5, "p95": 77.5, "max": 100.0}


def test_a_narrower_window_leaves_older_tasks_out(staff_user, mix):
    body = client_for(staff_user).get(METRICS, {"window": "45m"}).json()

    assert body["total"] == 2  # bob's queued and 10 s tasks
    assert body["finished"] == 1
    assert body["success_rate"] == 1.0


def test_rates_are_null_while_nothing_finished(api):
    body = api.get(METRICS).json()

    assert body["total"] == body["finished"] == 0
    assert body["success_rate"] is None and body["failure_rate"] is None
    assert body["task_types"] == {}


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        ("", 86400),  # an empty query parameter is one not given, as everywhere in DRF
        ("3600", 3600),
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
        ("366d", 366 * 86400),
    ],
)
def test_window_is_seconds_or_a_number_with_a_unit(api, window, seconds):
    response = api.get(METRICS, {"window": window})

    assert response.status_code == 200
    assert response.json()["window"]["seconds"] == seconds


@pytest.mark.parametrize("window", ["abc", "h", "0", "-5", "1.5h", "1y", "10 h", "367d"])
def test_bad_window_is_400_in_drf_error_format(api, window):
    response = api.get(METRICS, {"window": window})

    assert response.status_code == 400
    assert list(response.json()) == ["window"]
    assert isinstance(response.json()["window"][0], str)


def test_trailing_slash_is_optional(api):
    assert api.get(f"{METRICS}/").status_code == 200


def test_anonymous_is_401():
    assert APIClient().get(METRICS).status_code == 401


def test_staff_see_queue_depths_from_the_broker(staff_user, settings, queue_with_messages):
    current_app.conf.broker_read_url = None  # the configured broker, up
    settings.TASKS_QUEUES = [queue_with_messages(4), queue_with_messages(0)]

    body = client_for(staff_user).get(METRICS).json()

    assert body["queue_depths"] == dict(zip(settings.TASKS_QUEUES, [4, 0], strict=True))


def test_query_count_does_not_grow_with_the_records(api, user, mix):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(METRICS).status_code == 200
        return len(captured)

    before = queries()
    for ran in range(20):
        make_task(user, SLEEP, "succeeded", ago=timedelta(minutes=5), ran=seconds(ran))
        make_task(user, COUNT, "failed", ago=timedelta(minutes=5), attempts=2)

    assert queries() == before


def test_percentile_fraction_must_be_between_0_and_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        metrics.PercentileCont("duration", fraction=95)
