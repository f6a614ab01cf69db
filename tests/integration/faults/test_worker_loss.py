"""A worker process killed mid-task: noticed by its silence, run again, counted once."""

import time
import uuid

import pytest

from operations.models import MaintenanceLock
from tasks_app.models import DiagnosticCounter, TaskRecord
from tests.integration.fleet import HEARTBEAT_TIMEOUT, RECONCILE_EVERY
from tests.integration.processes import is_alive, sigkill
from tests.integration.test_task_lifecycle import has_status, poll, submit
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_worker_killed_mid_task_is_detected_and_the_task_completes_once(api, fleet):
    worker = fleet.start_worker()
    fleet.start_beat()
    key = f"killed-{uuid.uuid4().hex[:8]}"
    task = submit(api, "diagnostics.count", key=key, seconds=3)
    poll(api, task["id"], until=has_status("running"))
    [busy] = wait_until(worker.busy_children, timeout=5, what="the child running the task")
    children_before = set(worker.children())

    sigkill(busy)
    killed_at = time.monotonic()

    wait_until(
        lambda: set(worker.children()) - children_before,
        timeout=10,
        what="the worker to replace its killed child",
    )
    # The silence is noticed, and the task claimed again by a second attempt.
    wait_until(
        lambda: TaskRecord.objects.filter(pk=task["id"], attempts=2).exists(),
        timeout=20,
        what="a second attempt",
    )
    noticed_in = time.monotonic() - killed_at
    assert noticed_in < HEARTBEAT_TIMEOUT + RECONCILE_EVERY + 4, noticed_in
    final = poll(api, task["id"], until=has_status("succeeded", "failed"), timeout=20)[-1]
    assert final["status"] == "succeeded"
    assert final["attempts"] == 2
    assert DiagnosticCounter.objects.get(key=key).count == 1


def test_reconciliation_killed_with_its_worker_does_not_stop_reconciliation(api, fleet):
    worker = fleet.start_worker()
    fleet.start_beat()
    kill_a_reconcile_run_holding_its_lock(worker)
    # Then a worker dies under a task: reconciliation must still notice it.
    key = f"killed-{uuid.uuid4().hex[:8]}"
    task = submit(api, "diagnostics.count", key=key, seconds=3)
    poll(api, task["id"], until=has_status("running"))
    [busy] = wait_until(worker.busy_children, timeout=5, what="the child running the task")

    sigkill(busy)

    final = poll(
        api,
        task["id"],
        until=has_status("succeeded", "failed"),
        timeout=HEARTBEAT_TIMEOUT + RECONCILE_EVERY + 3 + 10,  # noticed, then 3 s of work
    )[-1]
    assert (final["status"], final["attempts"]) == ("succeeded", 2)
    assert DiagnosticCounter.objects.get(key=key).count == 1


def kill_a_reconcile_run_holding_its_lock(worker) -> None:
    """SIGKILL the pool child while it runs a reconcile, so that it cannot release the lock."""
    lock = MaintenanceLock.objects.filter(job="tasks_reconcile")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # A run takes some 50 ms; its holder ("host:pid:run") names the child running it.
        holder = wait_until(
            lambda: lock.exclude(holder="").values_list("holder", flat=True).first(),
            timeout=10,
            what="a reconcile run holding its lock",
            every=0.005,
        )
        pid = int(holder.split(":")[1])
        assert pid in worker.children(), f"{holder} is not a pool child of the worker"
        sigkill(pid)
        wait_until(lambda pid=pid: not is_alive(pid), timeout=5, what=f"child {pid} to die")
        if lock.filter(holder=holder).exists():
            return  # killed while holding it
        # The run had just finished: its child was killed idle. Catch the next run.
    raise AssertionError("could not kill a reconcile run while it held its lock")
