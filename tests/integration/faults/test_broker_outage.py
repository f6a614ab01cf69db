"""A Redis outage delays tasks, never loses them: the row is the outbox."""

import time

import pytest

from tasks_app.models import TaskRecord
from tests.integration.faults.conftest import wait_until

pytestmark = pytest.mark.integration

TASKS = "/api/v1/tasks/"


def test_submit_while_redis_is_down_is_accepted_and_runs_after_it_returns(api, broker, fleet):
    fleet.start_worker()
    fleet.start_beat()
    broker.kill()

    started = time.monotonic()
    response = api.post(
        TASKS,
        {"task_type": "diagnostics.sleep", "input": {"seconds": 0.2, "steps": 1}},
        format="json",
    )
    answered_in = time.monotonic() - started

    assert response.status_code == 202, response.content
    assert answered_in < 5, f"submit took {answered_in:.1f} s with the broker down"
    task_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    record = TaskRecord.objects.get(pk=task_id)  # committed: another connection would see it
    assert (record.status, record.dispatched_at) == ("queued", None)

    broker.start()  # same port, empty: nothing of the outage survives in it

    wait_until(
        lambda: TaskRecord.objects.filter(pk=task_id, status="succeeded").exists(),
        timeout=20,
        what="the task submitted during the outage to succeed",
    )
    record.refresh_from_db()
    assert record.attempts == 1
    assert record.result == {"slept_seconds": 0.2, "steps": 1}
