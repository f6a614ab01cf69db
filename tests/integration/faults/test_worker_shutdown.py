"""A worker stopped under a running task hands the task back; it never ends it cancelled.

Only an owner's or staff's cancel may end a task ``cancelled``. A stop is normal operation:
it may delay the task, never cancel it, lose it, or run its effect twice.
"""

import signal
import time
import uuid

import pytest

from tasks_app.models import DiagnosticCounter, TaskStatus
from tests.integration.conftest import submit_to_private_queue
from tests.integration.test_task_lifecycle import has_status, poll
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPETITIONS = 20
GRACE_SECONDS = 3  # honcho waits 5 s before its SIGKILL; any grace shorter than the task will do


def stop_as_honcho_and_systemd_do(worker) -> None:
    """SIGTERM to the process group (bin/serve's Ctrl-C; systemd's KillMode=control-group)."""
    worker.send_signal(signal.SIGTERM, with_children=True)
    worker.wait_then_kill(GRACE_SECONDS)


def stop_main_process_only(worker) -> None:
    """SIGTERM to the main process alone (systemd's KillMode=mixed, docker stop), SIGKILL later."""
    worker.send_signal(signal.SIGTERM)
    worker.wait_then_kill(GRACE_SECONDS)


def stop_with_ctrl_c_twice(worker) -> None:
    """An impatient operator: the second Ctrl-C turns Celery's warm shutdown into a cold one."""
    worker.send_signal(signal.SIGINT)
    time.sleep(0.5)
    worker.send_signal(signal.SIGINT)
    worker.wait_then_kill(GRACE_SECONDS)


STOPS = [stop_as_honcho_and_systemd_do, stop_main_process_only, stop_with_ctrl_c_twice]


def test_tasks_running_while_their_worker_is_stopped_run_again_and_succeed(owner, api, fleet):
    stopped = []
    for repetition in range(REPETITIONS):
        # Each round's task has a queue of its own, read by that round's worker alone: a later
        # round's worker, reconciling at start-up, hands earlier tasks back to their queues,
        # and must not run (and be stopped under) them again.
        queue = f"stop-{repetition}-{uuid.uuid4().hex[:6]}"
        worker = fleet.start_worker(queues=(queue,))
        stop = STOPS[repetition % len(STOPS)]
        key = f"stopped-{uuid.uuid4().hex[:8]}"
        record = submit_to_private_queue(
            owner=owner,
            task_type="diagnostics.count",
            queue=queue,
            task_input={"key": key, "seconds": GRACE_SECONDS + 1},  # outlives the grace period
        )
        poll(api, str(record.pk), until=has_status("running"), timeout=20)
        wait_until(worker.busy_children, timeout=5, what="the child running the task")

        stop(worker)
        fleet.workers.remove(worker)

        record.refresh_from_db()
        assert (record.status, record.attempts) == (TaskStatus.RUNNING, 1), stop.__name__
        stopped.append((record.pk, queue, key))

    fleet.start_beat()
    # The shared queues too: beat's reconciliation, which hands back the last round's task
    # once its heartbeat is overdue, runs there.
    fleet.start_worker(queues=("default", *(queue for _, queue, _ in stopped)))
    for task_id, _, key in stopped:
        final = poll(
            api, str(task_id), until=has_status("succeeded", "failed", "cancelled"), timeout=60
        )[-1]
        assert (final["status"], final["attempts"]) == ("succeeded", 2), final
        assert DiagnosticCounter.objects.get(key=key).count == 1
