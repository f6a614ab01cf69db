"""Health with a real worker: ready and healthy while it runs, 503 and critical once it stops.

The test starts a worker of its own, on a queue of its own, and points TASKS_QUEUES at
that queue alone: the session's shared worker (tests/integration/conftest.py) may be
running too, and it must not answer for the one this test stops.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import WorkerProcess

pytestmark = pytest.mark.integration

READY, TASK_HEALTH = "/api/v1/health/ready", "/api/v1/tasks/health"


@pytest.fixture
def own_worker(transactional_db, settings, monkeypatch, tmp_path, request):
    queue = f"health-test-{uuid.uuid4().hex[:8]}"
    settings.TASKS_QUEUES = [queue]  # WorkerProcess listens on these; readiness checks them
    monkeypatch.setenv("TASKS_QUEUES", queue)  # and the worker's own settings agree
    worker = WorkerProcess(log_path=tmp_path / "worker.log", concurrency=1)
    worker.wait_until_ready()
    yield worker
    worker.stop()  # by its own PID; a second stop is harmless
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- worker log (tail) ----\n" + worker.log()[-6000:])


def get_until(client, url: str, *, status: int, timeout: float = 20.0):
    """GET ``url`` until it answers ``status``; return that response, or fail with the last."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_ready_and_healthy_with_a_worker_then_503_and_critical_after_it_stops(own_worker, settings):
    (queue,) = settings.TASKS_QUEUES
    every_minute = IntervalSchedule.objects.create(every=60, period="seconds")
    # Beat itself is not under test: a periodic task it just sent is its heartbeat.
    PeriodicTask.objects.create(
        name="health-heartbeat",
        task="tasks_app.reconcile",
        interval=every_minute,
        last_run_at=timezone.now() - timedelta(seconds=5),
    )
    anonymous, staff = APIClient(), client_for(UserFactory(username="ops", is_staff=True))
    worker_name = own_worker.name.split("@")[0]

    ready = get_until(anonymous, READY, status=200)

    assert ready.status_code == 200, ready.json()
    workers_check = next(c for c in ready.json()["checks"] if c["name"] == "workers")
    assert [name.split("@")[0] for name in workers_check["workers"][queue]] == [worker_name]
    health = staff.get(TASK_HEALTH).json()
    assert (health["status"], health["reasons"]) == ("healthy", []), health

    own_worker.stop()
    not_ready = get_until(anonymous, READY, status=503)

    assert not_ready.status_code == 503, not_ready.json()
    checks = {check["name"]: check for check in not_ready.json()["checks"]}
    assert checks["workers"]["ok"] is False
    assert checks["workers"]["workers"] == {queue: []}
    assert all(checks[name]["ok"] for name in ("database", "broker", "beat"))
    health = staff.get(TASK_HEALTH).json()
    assert health["status"] == "critical"
    assert health["reasons"] == [
        {
            "check": "workers",
            "status": "critical",
            "message": f"no workers: none answered a ping on {queue}",
            "numbers": {"workers": 0, "by_queue": {queue: 0}},
        }
    ]
