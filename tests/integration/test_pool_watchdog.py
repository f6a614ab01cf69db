"""A wedged pool process is noticed and replaced, and its task runs anyway (issue 14).

The worker here has one pool process and listens on a queue of its own, so that the task
can only reach the process this test wedges (SIGSTOP: alive, holding its pipe, reading
nothing), and the session's shared worker cannot take it first.
"""

import os
import signal
import time
import uuid

import pytest

from tasks_app.models import PoolStall, TaskRecord
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import WorkerProcess, submit_to_private_queue
from tests.integration.test_task_lifecycle import has_status, poll

pytestmark = pytest.mark.integration

START_TIMEOUT = 3


@pytest.fixture
def one_process_worker(transactional_db, tmp_path, request):
    queue = f"watchdog-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        log_path=tmp_path / "worker.log",
        concurrency=1,
        queues=[queue],
        extra_env={"TASKS_START_TIMEOUT_SECONDS": str(START_TIMEOUT)},
    )
    worker.wait_until_ready()
    yield worker, queue
    for pid in worker.pool_pids():  # a stopped process would not hear the shutdown
        os.kill(pid, signal.SIGCONT)
    worker.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- worker log (tail) ----\n" + worker.log()[-6000:])


def test_a_task_handed_to_a_wedged_process_runs_on_its_replacement(one_process_worker):
    worker, queue = one_process_worker
    (wedged,) = worker.pool_pids()
    os.kill(wedged, signal.SIGSTOP)
    owner = UserFactory(username=f"wedge-{uuid.uuid4().hex[:6]}")
    api = client_for(owner)
    record = submit_to_private_queue(
        owner=owner,
        task_type="diagnostics.sleep",
        queue=queue,
        task_input={"seconds": 0.1, "steps": 1},
    )

    final = poll(api, str(record.pk), until=has_status("succeeded", "failed"), timeout=30)[-1]

    assert final["status"] == "succeeded"
    assert final["attempts"] == 1
    # Replaced by a fresh process (the dead one may take a moment to be reaped).
    deadline = time.monotonic() + 10
    while wedged in worker.pool_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert wedged not in worker.pool_pids()
    assert len(worker.pool_pids()) == 1
    stall = PoolStall.objects.get()
    assert (stall.pid, stall.task_id, stall.task_type) == (
        wedged,
        str(record.pk),
        "diagnostics.sleep",
    )
    assert stall.waited_seconds >= START_TIMEOUT
    assert "did not start its task" in worker.log()
    # Staff see it in the health view.
    staff = client_for(UserFactory(username=f"staff-{uuid.uuid4().hex[:6]}", is_staff=True))
    health = staff.get("/api/v1/tasks/health").json()
    (check,) = [check for check in health["checks"] if check["check"] == "pool_stalls"]
    assert check["status"] == "degraded"
    assert check["numbers"]["stalls"] == 1
    assert TaskRecord.objects.get(pk=record.pk).status == "succeeded"
