"""Health with a real worker: healthy while it runs, critical once it stops; ready throughout.

Readiness is this web process's (its database): workers come and go without taking it out
of rotation. The test starts a worker of its own, on a queue of its own, and points
TASKS_QUEUES at that queue alone: the session's shared worker (tests/integration/conftest.py)
may be running too, and it must not answer for the one this test stops.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from operations import broker_census
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import WorkerProcess

pytestmark = pytest.mark.integration

READY, TASK_HEALTH = "/api/v1/health/ready", "/api/v1/tasks/health"


@pytest.fixture
def own_queue(transactional_db, settings, monkeypatch):
    queue = f"health-test-{uuid.uuid4().hex[:8]}"
    settings.TASKS_QUEUES = [queue]  # WorkerProcess listens on these; health checks them
    monkeypatch.setenv("TASKS_QUEUES", queue)  # and the worker's own settings agree
    settings.OPS_WORKER_CENSUS_SECONDS = 1.0  # the census shared between calls: 1 s old at most
    every_minute = IntervalSchedule.objects.create(every=60, period="seconds")
    # Beat itself is not under test: a periodic task it just sent is its heartbeat.
    PeriodicTask.objects.create(
        name="health-heartbeat",
        task="operations.reconcile_tasks",
        interval=every_minute,
        last_run_at=timezone.now() - timedelta(seconds=5),
    )
    return queue


@pytest.fixture
def start_worker(own_queue, tmp_path, request):
    """Start a worker on the test's own queue; stopped by its own PID at the end."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(WorkerProcess(log_path=tmp_path / "worker.log", concurrency=1))
        started[-1].wait_until_ready()
        return started[-1]

    yield start
    for worker in started:
        worker.stop()  # a second stop is harmless
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for worker in started:
            print("---- worker log (tail) ----\n" + worker.log()[-6000:])


def health_until(client, *, status: str, timeout: float = 20.0) -> dict:
    """GET tasks/health until its status is ``status``; return that body, or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(TASK_HEALTH).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_healthy_with_a_worker_then_critical_after_it_stops_and_ready_throughout(
    start_worker, own_queue
):
    queue = own_queue
    anonymous, staff = APIClient(), client_for(UserFactory(username="ops", is_staff=True))
    worker = start_worker()

    health = health_until(staff, status="healthy")

    assert (health["status"], health["reasons"]) == ("healthy", []), health
    workers_check = next(c for c in health["checks"] if c["check"] == "workers")
    assert workers_check["numbers"] == {"workers": 1, "by_queue": {queue: 1}}
    assert anonymous.get(READY).status_code == 200

    worker.stop()
    health = health_until(staff, status="critical")

    assert health["status"] == "critical"
    assert health["reasons"] == [
        {
            "check": "workers",
            "status": "critical",
            "message": f"no workers: none answered a ping on {queue}",
            "numbers": {"workers": 0, "by_queue": {queue: 0}},
        }
    ]
    # Still ready: this web process serves, and submissions wait in the outbox.
    ready = anonymous.get(READY)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")


def test_a_worker_started_after_a_census_is_counted_once_the_interval_passed(
    start_worker, own_queue, settings
):
    settings.OPS_WORKER_CENSUS_SECONDS = 15.0
    staff = client_for(UserFactory(username="ops", is_staff=True))
    key = broker_census.broker_census_cache_key(queues=[own_queue])
    # Taken before the request: the census is cached during it, and its interval counts from
    # then (measured after the answer, a healthy answer came at 14.99 s of a 15 s interval).
    census_taken = time.monotonic()
    before = staff.get(TASK_HEALTH).json()  # the census: nobody on the queue yet
    assert reasons_of(before)["workers"]["numbers"]["workers"] == 0

    start_worker()

    # Within the interval every call reads the census in the cache, not the workers.
    assert time.monotonic() - census_taken < settings.OPS_WORKER_CENSUS_SECONDS - 2, "slow start"
    assert reasons_of(staff.get(TASK_HEALTH).json())["workers"]["numbers"]["workers"] == 0
    assert cache.get(key).workers == {own_queue: []}
    after = health_until(staff, status="healthy", timeout=30)
    assert after["status"] == "healthy", after
    assert time.monotonic() - census_taken >= settings.OPS_WORKER_CENSUS_SECONDS
    assert len(cache.get(key).workers[own_queue]) == 1


def reasons_of(body: dict) -> dict[str, dict]:
    return {reason["check"]: reason for reason in body["reasons"]}
