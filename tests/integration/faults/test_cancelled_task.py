"""A cancelled task never runs, whatever the broker still holds for it."""

import time
import uuid

import pytest

from tasks_app.models import DiagnosticCounter, TaskRecord
from tests.integration.fleet import RECONCILE_EVERY, REDISPATCH_AFTER
from tests.integration.test_task_lifecycle import submit
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASKS = "/api/v1/tasks/"


def test_cancelled_queued_task_never_runs_even_after_all_workers_restart(api, broker, fleet):
    key = f"cancelled-{uuid.uuid4().hex[:8]}"
    fleet.start_relay()
    task = submit(api, "diagnostics.count", key=key, seconds=0)
    # No worker yet: once the relay has published it, its message waits in the broker.
    wait_until(
        lambda: broker.message_count("default") == 1, timeout=10, what="the relay to publish"
    )

    response = api.delete(f"{TASKS}{task['id']}/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"

    # Fresh processes: nothing remembers the revoke; only the record says cancelled.
    fleet.start_worker()
    fleet.start_beat()
    wait_until(
        lambda: broker.message_count("default") == 0,
        timeout=10,
        what="the worker to take the cancelled task's message",
    )
    # Longer than reconciliation and redispatch need to send it again, if they would.
    time.sleep(REDISPATCH_AFTER + 2 * RECONCILE_EVERY + 1)

    record = TaskRecord.objects.get(pk=task["id"])
    assert (record.status, record.attempts, record.started_at) == ("cancelled", 0, None)
    assert not DiagnosticCounter.objects.filter(key=key).exists()
