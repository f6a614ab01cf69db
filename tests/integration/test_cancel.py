"""Cancellation that cannot hit the wrong task (issue 14), with the real worker and broker.

A running task learns of its cancel through its own record: at its progress reports, and
from its watch, which interrupts a body that never checks. No process signals another by
pid, so a cancel that lands as a task ends cannot reach the next task of that process.
"""

import random
import time

import pytest

from tasks_app.models import TaskRecord
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import submit_to_private_queue
from tests.integration.test_task_lifecycle import TASKS, celery_state, has_status, poll, submit

pytestmark = pytest.mark.integration

RACE_ROUNDS = 100  # two tasks a round: 200 cancels
POOL_LOST = ("exited with", "WorkerLostError", "Pool process", "Process '")


def test_cancel_stops_a_body_that_never_checks_within_seconds(live):
    task = submit(live, "diagnostics.block", seconds=120)
    poll(live, task["id"], until=has_status("running"))

    cancelled_at = time.monotonic()
    assert live.delete(f"{TASKS}{task['id']}/").status_code == 200

    # The body sat in one 120 s call; its watch interrupted it and the worker recorded the
    # stop in Celery's row too.
    assert celery_state(task["id"], timeout=10) == "REVOKED"
    latency = time.monotonic() - cancelled_at
    assert latency < 4, f"the body stopped {latency:.1f} s after its cancel"
    assert TaskRecord.objects.get(pk=task["id"]).status == "cancelled"
    # Its process is free again at once.
    follow_up = submit(live, "diagnostics.sleep", seconds=0.1, steps=1)
    assert poll(live, follow_up["id"], until=has_status("succeeded"), timeout=10)


def test_a_cancel_stops_a_body_between_its_database_queries(celery_worker, transactional_db):
    """A body that spends its time in queries is stopped between two of them: stopped
    inside one, its connection was left mid-command and the worker's own writes after the
    body failed ("another command is already in progress", Celery's row FAILURE)."""
    owner = UserFactory(username="queries-owner")
    api = client_for(owner)
    log_start = len(celery_worker.log())
    for round_ in range(5):
        record = submit_to_private_queue(
            owner=owner, task_type="diagnostics.queries", queue="long", task_input={"seconds": 60}
        )
        poll(api, str(record.pk), until=has_status("running"))
        time.sleep(0.3 + 0.13 * round_)  # lands at a different moment of a query each time
        assert api.post(f"{TASKS}{record.pk}/cancel/").status_code == 200

        assert celery_state(str(record.pk), timeout=10) == "REVOKED"
        assert TaskRecord.objects.get(pk=record.pk).status == "cancelled"
    follow_up = submit(api, "diagnostics.sleep", seconds=0.1, steps=1)
    assert poll(api, follow_up["id"], until=has_status("succeeded"), timeout=10)
    assert "already in progress" not in celery_worker.log()[log_start:]


def test_cancels_as_tasks_stop_never_reach_the_next_task(live, celery_worker):
    pool_before = celery_worker.pool_pids()
    log_start = len(celery_worker.log())
    rng = random.Random(14)
    followers = []

    for _ in range(RACE_ROUNDS):
        # One task that stops cooperatively on its cancel (it checks every 0.1 s), one that
        # is cancelled around the moment it finishes by itself (409 if it finished first).
        stopping = submit(live, "diagnostics.sleep", seconds=30, steps=300)
        finishing = submit(live, "diagnostics.sleep", seconds=0.3, steps=3)
        for task in (stopping, finishing):
            poll(live, task["id"], until=has_status("running", "succeeded"), timeout=10)
        started = time.monotonic()
        cancels = [(rng.uniform(0, 0.1), stopping), (rng.uniform(0.15, 0.45), finishing)]
        round_followers = []
        for at, task in sorted(cancels, key=lambda cancel: cancel[0]):
            time.sleep(max(0.0, started + at - time.monotonic()))
            response = live.delete(f"{TASKS}{task['id']}/")
            assert response.status_code in (200, 409), response.content
            round_followers.append(submit(live, "diagnostics.sleep", seconds=0.05, steps=1))
        for follower in round_followers:
            poll(live, follower["id"], until=has_status("succeeded", "failed"), timeout=10)
        followers += round_followers

    records = TaskRecord.objects.filter(pk__in=[task["id"] for task in followers])
    assert {record.status for record in records} == {"succeeded"}
    waits = sorted((record.started_at - record.created_at).total_seconds() for record in records)
    assert waits[-1] < 2, f"slowest start {waits[-1]:.2f} s; median {waits[len(waits) // 2]:.2f}"
    assert not TaskRecord.objects.filter(status="timed_out").exists()
    log = celery_worker.log()[log_start:]
    assert not [line for line in log.splitlines() if any(word in line for word in POOL_LOST)]
    assert celery_worker.pool_pids() == pool_before  # no pool process lost or replaced
