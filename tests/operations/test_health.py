"""Health: liveness, readiness, the staff evaluation, and snapshots with their alerts.

Only the worker inspection (a broadcast the workers answer) is replaced; the database,
the broker connection and the queue sizes are the real ones of the test settings.
"""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import current_app
from celery.app.control import Inspect
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from operations import alerts, broker_census
from operations.models import HealthSnapshot
from operations.tasks import record_health_snapshot
from tasks_app.models import DeadLetter, TaskStatus
from tests.conftest import client_for
from tests.factories import TaskRecordFactory, UserFactory

pytestmark = pytest.mark.django_db

LIVE, READY, TASK_HEALTH = "/api/v1/health/live", "/api/v1/health/ready", "/api/v1/tasks/health"


@pytest.fixture(autouse=True)
def _queues(settings):
    settings.TASKS_QUEUES = ["default", "long"]
    # Each test says what the workers answer, and is answered live; the census shared
    # between calls is tested on its own below.
    settings.OPS_WORKER_CENSUS_SECONDS = 0


@pytest.fixture
def workers(monkeypatch):
    """Set what ``inspect().active_queues()`` answers: {worker: [queue, ...]}, or None."""

    def answer(replies: dict[str, list[str]] | None) -> None:
        reply = None
        if replies is not None:
            reply = {name: [{"name": q} for q in queues] for name, queues in replies.items()}
        monkeypatch.setattr(Inspect, "active_queues", lambda self: reply)

    answer({"w1@host": ["default", "long"]})
    return answer


@pytest.fixture(params=["refusing", "silent"])
def broker_down(request):
    """The broker the health checks read from is down: it refuses connections, or it
    accepts them (the kernel does, on a listening socket) and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = 1 if request.param == "refusing" else silent.getsockname()[1]
        current_app.conf.broker_read_url = f"redis://127.0.0.1:{port}/0"
        yield silent if request.param == "silent" else None
        current_app.conf.broker_read_url = None


@pytest.fixture(autouse=True)
def beat_ran(db):
    """``beat_ran(seconds_ago=30)``: beat just sent a periodic task (it did, 30 s ago, unless
    a test says otherwise), ``at=`` a time of the test's own."""
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")

    def ran(seconds_ago: float = 0, *, at=None) -> None:
        PeriodicTask.objects.update_or_create(
            name="health-test",
            defaults={
                "task": "operations.reconcile_tasks",
                "interval": every_minute,
                "last_run_at": at or timezone.now() - timedelta(seconds=seconds_ago),
            },
        )

    ran(seconds_ago=30)
    return ran


@pytest.fixture
def beat_never_ran(beat_ran):
    """Beat never sent anything since the schedules were installed ``installed_ago`` s ago."""

    def never_ran(*, installed_ago: float) -> None:
        # update(), not save(): date_changed is when the row was installed or last edited.
        PeriodicTask.objects.update(
            last_run_at=None, date_changed=timezone.now() - timedelta(seconds=installed_ago)
        )

    return never_ran


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    return client_for(staff_user)


def reasons_by_check(body: dict) -> dict[str, dict]:
    return {reason["check"]: reason for reason in body["reasons"]}


def finished(count: int, status: str, *, ago: timedelta = timedelta(minutes=1)) -> None:
    TaskRecordFactory.create_batch(count, status=status, finished_at=timezone.now() - ago)


# --- Live and ready -------------------------------------------------------------------------


def test_live_answers_ok_without_credentials_and_ignores_a_bad_token():
    client = APIClient()
    assert client.get(LIVE).json() == {"status": "ok"}
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get(LIVE + "/")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_is_200_with_no_worker_and_beat_never_run(workers, beat_never_ran):
    workers(None)  # nobody answers a ping
    beat_never_ran(installed_ago=3600)

    response = APIClient().get(READY)

    # This web process can serve: the outbox takes submissions while workers are down.
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "checks": [{"name": "database", "ok": True, "detail": "query answered"}]},
    )


def test_ready_makes_no_broker_connection(broker_down):
    """A broker that accepts connections and never answers: readiness never goes near it."""
    listening = broker_down
    started = time.monotonic()

    response = APIClient().get(READY)

    assert response.status_code == 200, response.json()
    assert time.monotonic() - started < 0.5  # no ping waited out, no broker timeout
    if listening is not None:
        listening.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody connected
            listening.accept()


# A fresh interpreter, because the settings' database is read once per process.
READY_WITHOUT_DATABASE = """
import json, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get("/api/v1/health/ready")
print(json.dumps({"status": response.status_code, "type": response["Content-Type"],
                  "body": response.json()}))
"""


@pytest.mark.integration
def test_ready_is_503_json_when_the_database_is_unreachable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/nothing",
        }
        answer = subprocess.run(
            [sys.executable, "-c", READY_WITHOUT_DATABASE],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout.splitlines()[-1])
    assert (result["status"], result["type"]) == (503, "application/json")
    assert result["body"] == {
        "status": "unavailable",
        "checks": [
            {
                "name": "database",
                "ok": False,
                "detail": "the database did not answer (OperationalError)",
            }
        ],
    }
    assert "not ready, the database did not answer" in answer.stderr


# --- Who may see tasks/health -------------------------------------------------------------


def test_tasks_health_is_401_for_anonymous_and_403_for_non_staff(api):
    assert APIClient().get(TASK_HEALTH).status_code == 401
    assert api.get(TASK_HEALTH).status_code == 403


# --- The evaluation, as staff see it --------------------------------------------------------


def test_healthy_with_workers_and_nothing_wrong(staff_api, workers):
    finished(9, TaskStatus.SUCCEEDED)
    finished(1, TaskStatus.FAILED)

    body = staff_api.get(TASK_HEALTH).json()

    assert (body["status"], body["reasons"]) == ("healthy", [])
    checks = {check["check"]: check for check in body["checks"]}
    assert checks["failure_rate"]["numbers"]["rate"] == 0.1
    assert checks["workers"]["numbers"] == {"workers": 1, "by_queue": {"default": 1, "long": 1}}
    assert [c["numbers"]["queue"] for c in body["checks"] if c["check"] == "queue_backlog"] == [
        "default",
        "long",
    ]


def test_failure_rate_above_the_warning_is_degraded_and_names_its_numbers(staff_api, workers):
    finished(16, TaskStatus.SUCCEEDED)
    finished(2, TaskStatus.FAILED)
    finished(2, TaskStatus.TIMED_OUT)
    finished(2, TaskStatus.CANCELLED)  # finished, not failed: counts in the denominator

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "degraded"
    reason = reasons_by_check(body)["failure_rate"]
    assert reason["status"] == "degraded"
    assert reason["numbers"] == {
        "finished": 22,
        "failed": 2,
        "timed_out": 2,
        "rate": 0.1818,
        "window_seconds": 900,
        "warning_above": 0.1,
        "critical_above": 0.2,
        "min_samples": 20,
    }
    assert reason["message"].startswith("failure rate 18.2%: 4 of 22 tasks finished")


def test_failure_rate_above_critical_is_critical(staff_api, workers):
    finished(14, TaskStatus.SUCCEEDED)
    finished(6, TaskStatus.FAILED)

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "critical"
    assert reasons_by_check(body)["failure_rate"]["numbers"]["rate"] == 0.3


def test_too_few_finished_tasks_and_old_failures_are_not_judged(staff_api, workers):
    finished(3, TaskStatus.FAILED)
    finished(1, TaskStatus.SUCCEEDED)
    finished(20, TaskStatus.FAILED, ago=timedelta(hours=1))  # before the 15-minute window

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "healthy"
    check = next(c for c in body["checks"] if c["check"] == "failure_rate")
    assert check["numbers"]["finished"] == 4
    assert "too few to judge" in check["message"]


def test_the_readme_demo_of_two_failures_does_not_make_health_critical(staff_api, workers):
    finished(2, TaskStatus.FAILED)

    body = staff_api.get(TASK_HEALTH).json()

    check = next(c for c in body["checks"] if c["check"] == "failure_rate")
    assert (body["status"], check["status"]) == ("healthy", "healthy")
    assert check["message"].endswith("too few to judge (fewer than 20)")


def test_tasks_running_past_80_percent_of_their_time_limit_degrade(staff_api, workers):
    now = timezone.now()
    # diagnostics.sleep stops at its soft limit of 3700 s: 80% is 2960 s.
    for seconds in (3000, 3500, 100):
        TaskRecordFactory(status=TaskStatus.RUNNING, started_at=now - timedelta(seconds=seconds))
    TaskRecordFactory(  # long finished: not running any more
        status=TaskStatus.SUCCEEDED, started_at=now - timedelta(hours=5), finished_at=now
    )

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "degraded"
    reason = reasons_by_check(body)["time_limits"]
    assert reason["numbers"] == {
        "running_near_limit": 2,
        "by_task_type": {"diagnostics.sleep": 2},
        "limit_seconds": {"diagnostics.sleep": 3700},
        "fraction": 0.8,
    }
    assert reason["message"] == (
        "2 running tasks past 80% of their time limit (diagnostics.sleep: 2)"
    )


def test_queue_backlog_above_the_threshold_degrades(
    staff_api, workers, settings, queue_with_messages
):
    settings.OPS_QUEUE_BACKLOG_WARNING = 3
    short, backlog = queue_with_messages(2), queue_with_messages(5)
    settings.TASKS_QUEUES = [short, backlog]
    workers({"w1@host": [short, backlog]})

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "degraded"
    assert body["reasons"] == [
        {
            "check": "queue_backlog",
            "status": "degraded",
            "message": f"queue {backlog}: 5 messages waiting (warning above 3)",
            "numbers": {"queue": backlog, "waiting": 5, "warning_above": 3},
        }
    ]


def test_open_dead_letters_above_the_threshold_degrade(staff_api, workers, settings):
    settings.OPS_DEAD_LETTERS_WARNING = 2
    yesterday = timezone.now() - timedelta(days=1)
    for resolution in ["open"] * 3 + ["requeued", "discarded"]:
        # Failed a day ago: outside the failure-rate window, so only the dead letters count.
        record = TaskRecordFactory(status=TaskStatus.FAILED, finished_at=yesterday)
        DeadLetter.objects.create(
            task=record,
            owner=record.owner,
            task_type=record.task_type,
            final_status=TaskStatus.FAILED,
            task_created_at=record.created_at,
            resolution=resolution,
        )

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "degraded"
    assert reasons_by_check(body)["dead_letters"] == {
        "check": "dead_letters",
        "status": "degraded",
        "message": "3 open dead letters (warning above 2)",
        "numbers": {"open": 3, "warning_above": 2},
    }


def test_no_workers_is_critical(staff_api, workers):
    workers(None)  # nobody answered the ping

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "critical"
    assert reasons_by_check(body)["workers"] == {
        "check": "workers",
        "status": "critical",
        "message": "no workers: none answered a ping on default, long",
        "numbers": {"workers": 0, "by_queue": {"default": 0, "long": 0}},
    }


def test_a_queue_without_a_worker_is_critical(staff_api, workers):
    workers({"w1@host": ["default"], "w2@host": ["default"]})

    reason = reasons_by_check(staff_api.get(TASK_HEALTH).json())["workers"]

    assert reason["status"] == "critical"
    assert reason["message"] == "no worker on queue long (2 on the others)"


def test_unreachable_broker_makes_health_unknown(staff_api, workers, broker_down):
    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "unknown"
    reasons = body["reasons"]
    assert [(r["check"], r["status"]) for r in reasons] == [
        ("workers", "unknown"),
        ("queue_backlog", "unknown"),
        ("queue_backlog", "unknown"),
    ]
    assert reasons[0]["message"].startswith("workers could not be asked: broker unreachable")


def test_a_certain_critical_outranks_unknown(staff_api, workers, broker_down):
    finished(20, TaskStatus.FAILED)

    assert staff_api.get(TASK_HEALTH).json()["status"] == "critical"


def test_stale_beat_is_critical(staff_api, workers, beat_ran, settings):
    settings.OPS_BEAT_STALE_SECONDS = 180
    beat_ran(seconds_ago=200)

    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "critical"
    (reason,) = body["reasons"]
    assert (reason["check"], reason["status"]) == ("beat", "critical")
    assert reason["message"] == "last periodic task sent 200 s ago (stale after 180 s)"
    assert reason["numbers"]["age_seconds"] == 200


def test_beat_that_never_sent_anything_is_critical_once_the_stale_limit_passed(
    staff_api, workers, beat_never_ran, settings
):
    settings.OPS_BEAT_STALE_SECONDS = 180
    beat_never_ran(installed_ago=20)  # a fresh deployment: beat's first run is due soon

    fresh = staff_api.get(TASK_HEALTH).json()

    assert (fresh["status"], fresh["reasons"]) == ("healthy", [])
    beat = next(check for check in fresh["checks"] if check["check"] == "beat")
    assert beat["message"].startswith("beat has not sent any periodic task in the 20 s")

    beat_never_ran(installed_ago=600)
    reason = reasons_by_check(staff_api.get(TASK_HEALTH).json())["beat"]

    assert reason["status"] == "critical"
    assert reason["message"] == (
        "beat has not sent any periodic task in the 600 s since they were installed "
        "(stale after 180 s)"
    )


def test_no_enabled_periodic_task_is_critical(staff_api, workers):
    PeriodicTask.objects.update(enabled=False)

    reason = reasons_by_check(staff_api.get(TASK_HEALTH).json())["beat"]

    assert reason["status"] == "critical"
    assert reason["message"].startswith("no periodic task is enabled")


# --- The census of workers, shared between calls -----------------------------------------


@pytest.fixture
def census(settings):
    """The census shared for ``interval`` seconds; none taken yet."""
    settings.OPS_WORKER_CENSUS_SECONDS = 1.0
    key = broker_census.broker_census_cache_key(queues=settings.TASKS_QUEUES)
    cache.delete_many([key, key + ":taken"])
    yield key
    cache.delete_many([key, key + ":taken"])


def workers_numbers(client) -> dict:
    body = client.get(TASK_HEALTH).json()
    return next(check for check in body["checks"] if check["check"] == "workers")["numbers"]


@pytest.mark.integration
def test_the_census_is_taken_once_per_interval_and_shared_through_the_cache(
    staff_api, workers, census
):
    workers({"w1@host": ["default", "long"]})
    assert workers_numbers(staff_api)["workers"] == 1
    shared = cache.get(census)
    assert shared.workers == {"default": ["w1@host"], "long": ["w1@host"]}

    workers({"w1@host": ["default", "long"], "w2@host": ["default", "long"]})  # one more

    # Within the interval: the census taken above, for this and every other process.
    assert workers_numbers(staff_api)["workers"] == 1
    assert alerts.health_snapshot_record().reasons == []
    time.sleep(2.1)  # the interval, and the database cache's whole-second expiry times
    assert workers_numbers(staff_api)["workers"] == 2
    assert cache.get(census).workers["long"] == ["w1@host", "w2@host"]


def test_a_failing_cache_means_asking_live(staff_api, workers, settings, caplog):
    settings.OPS_WORKER_CENSUS_SECONDS = 10.0
    settings.CACHES = {  # nothing listens on port 1
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    workers({"w1@host": ["default", "long"], "w2@host": ["default"]})

    with caplog.at_level(logging.WARNING, logger="operations.broker_census"):
        response = staff_api.get(TASK_HEALTH)

    assert response.status_code == 200
    assert workers_numbers(staff_api) == {"workers": 2, "by_queue": {"default": 2, "long": 1}}
    assert "broker census not shared, cache unavailable" in caplog.text


# --- Snapshots and alerts -------------------------------------------------------------------


@pytest.fixture
def staff_with_mail(db):
    UserFactory(username="ops", is_staff=True, email="ops@example.com")
    UserFactory(username="ops2", is_staff=True, email="ops2@example.com")
    UserFactory(username="gone", is_staff=True, is_active=False, email="gone@example.com")
    UserFactory(username="nomail", is_staff=True, email="")
    UserFactory(username="customer", email="customer@example.com")


def test_snapshot_records_status_and_reasons_and_prunes_past_retention(workers, settings):
    settings.OPS_HEALTH_SNAPSHOT_RETENTION_DAYS = 7
    now = timezone.now()
    old = HealthSnapshot.objects.create(created_at=now - timedelta(days=8), status="healthy")
    kept = HealthSnapshot.objects.create(created_at=now - timedelta(days=6), status="healthy")
    workers({"w1@host": ["default"]})

    snapshot = alerts.health_snapshot_record(now=now)

    assert set(HealthSnapshot.objects.values_list("pk", flat=True)) == {kept.pk, snapshot.pk}
    assert not HealthSnapshot.objects.filter(pk=old.pk).exists()
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.created_at) == ("critical", now)
    assert snapshot.reasons == [
        {
            "check": "workers",
            "status": "critical",
            "message": "no worker on queue long (1 on the others)",
            "numbers": {"workers": 1, "by_queue": {"default": 1, "long": 0}},
        }
    ]


def test_turning_critical_mails_active_staff_with_an_address_once(
    workers, staff_with_mail, mailoutbox
):
    now = timezone.now()
    alerts.health_snapshot_record(now=now)
    assert mailoutbox == []  # healthy: nothing to say

    workers(None)
    first = alerts.health_snapshot_record(now=now + timedelta(minutes=1))
    for minute in range(2, 5):  # the outage goes on: no more mail
        alerts.health_snapshot_record(now=now + timedelta(minutes=minute))

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == ["ops2@example.com", "ops@example.com"]
    assert "health is critical" in mail.subject
    assert "no workers: none answered a ping on default, long" in mail.body
    assert HealthSnapshot.objects.exclude(notified_at=None).get() == first


def test_flapping_within_the_throttle_sends_one_message_and_after_it_another(
    workers, staff_with_mail, mailoutbox, settings, beat_ran
):
    settings.OPS_ALERT_THROTTLE_SECONDS = 3600
    now = timezone.now()
    for minute, answer in enumerate([None, {"w@h": ["default", "long"]}, None]):
        workers(answer)
        alerts.health_snapshot_record(now=now + timedelta(minutes=minute))
    assert len(mailoutbox) == 1

    beat_ran(at=now + timedelta(minutes=60))  # beat went on meanwhile
    workers({"w@h": ["default", "long"]})
    alerts.health_snapshot_record(now=now + timedelta(minutes=61))
    workers(None)
    alerts.health_snapshot_record(now=now + timedelta(minutes=62))

    assert len(mailoutbox) == 2


class WebhookReceiver(ThreadingHTTPServer):
    """A local HTTP server that keeps the JSON bodies POSTed to it."""

    daemon_threads = True

    def __init__(self, *, status: int = 200):
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.status = status
        self.bodies: list[dict] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    receivers = []

    def start(*, status: int = 200) -> WebhookReceiver:
        receiver = WebhookReceiver(status=status)
        receiver.thread.start()
        receivers.append(receiver)
        settings.OPS_ALERT_WEBHOOK_URL = receiver.url
        return receiver

    yield start
    for receiver in receivers:
        receiver.shutdown()
        receiver.server_close()


def test_turning_critical_posts_the_reasons_to_the_webhook(workers, webhook, mailoutbox):
    receiver = webhook()
    workers(None)

    snapshot = alerts.health_snapshot_record()

    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["status"] == "critical"
    assert body["checked_at"] == snapshot.created_at.isoformat()
    assert body["reasons"][0]["message"] == "no workers: none answered a ping on default, long"
    assert "health is critical" in body["text"]
    assert mailoutbox == []  # no staff with an address: the webhook alone


def test_a_failing_webhook_is_logged_and_the_snapshot_kept(workers, webhook, caplog, settings):
    webhook(status=500)
    workers(None)
    with caplog.at_level(logging.WARNING, logger="operations.alerts"):
        alerts.health_snapshot_record()
    assert "webhook answered 500" in caplog.text

    settings.OPS_ALERT_WEBHOOK_URL = "http://127.0.0.1:1/hook"  # nothing listens
    HealthSnapshot.objects.update(notified_at=None, status="healthy")
    with caplog.at_level(logging.WARNING, logger="operations.alerts"):
        snapshot = alerts.health_snapshot_record()
    assert "webhook failed" in caplog.text
    assert snapshot.notified_at is not None
    assert HealthSnapshot.objects.count() == 2


def test_beat_task_records_a_snapshot(workers):
    # Beat's schedule names the task: the name is part of the interface.
    assert (
        current_app.tasks["operations.record_health_snapshot"].name == record_health_snapshot.name
    )

    assert record_health_snapshot() == "healthy"
    assert HealthSnapshot.objects.get().status == "healthy"


def test_a_task_waiting_past_the_relay_lag_degrades_naming_the_relay(staff_api, workers, settings):
    settings.OPS_RELAY_LAG_SECONDS = 30
    TaskRecordFactory(status=TaskStatus.QUEUED, created_at=timezone.now() - timedelta(seconds=5))
    TaskRecordFactory(  # published: its message is in the broker, not the relay's business
        status=TaskStatus.QUEUED,
        created_at=timezone.now() - timedelta(minutes=10),
        dispatched_at=timezone.now() - timedelta(minutes=10),
    )

    assert staff_api.get(TASK_HEALTH).json()["status"] == "healthy"

    TaskRecordFactory(status=TaskStatus.QUEUED, created_at=timezone.now() - timedelta(seconds=95))
    body = staff_api.get(TASK_HEALTH).json()

    assert body["status"] == "degraded"
    relay = reasons_by_check(body)["relay"]
    assert relay["numbers"]["waiting"] == 2 and relay["numbers"]["oldest_seconds"] >= 95
    assert "manage.py tasks_relay" in relay["message"]
