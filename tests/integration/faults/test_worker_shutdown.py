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
# Rounds run this many at a time, each with a worker and a queue of its own, all stopped at
# once: the same stops, in a fraction of the time.
ROUNDS_AT_ONCE = 5
GRACE_SECONDS = 2  # honcho waits 5 s before its SIGKILL; any grace shorter than the task will do
# Longer than the grace by more than it takes to see a batch's tasks running and stop them all.
TASK_SECONDS = GRACE_SECONDS + 3


def stop_as_honcho_and_systemd_do(worker) -> None:
    """SIGTERM to the process group (bin/serve's Ctrl-C; systemd's KillMode=control-group)."""
    worker.send_signal(signal.SIGTERM, with_children=True)


def stop_main_process_only(worker) -> None:
    """SIGTERM to the main process alone (systemd's KillMode=mixed, docker stop), SIGKILL later."""
    worker.send_signal(signal.SIGTERM)


def stop_with_ctrl_c_twice(worker) -> None:
    """An impatient operator: the second Ctrl-C turns Celery's warm shutdown into a cold one."""
    worker.send_signal(signal.SIGINT)
    time.sleep(0.5)
    worker.send_signal(signal.SIGINT)


STOPS = [stop_as_honcho_and_systemd_do, stop_main_process_only, stop_with_ctrl_c_twice]


def test_tasks_running_while_their_worker_is_stopped_run_again_and_succeed(owner, api, fleet):
    stopped = []
    for first in range(0, REPETITIONS, ROUNDS_AT_ONCE):
        repetitions = range(first, min(first + ROUNDS_AT_ONCE, REPETITIONS))
        # Each round's task has a queue of its own, read by that round's worker alone: a later
        # round's worker, reconciling at start-up, hands earlier tasks back to their queues,
        # and must not run (and be stopped under) them again.
        queues = [f"stop-{repetition}-{uuid.uuid4().hex[:6]}" for repetition in repetitions]
        workers = fleet.start_workers_at_once([(queue,) for queue in queues])
        rounds = []
        for repetition, queue, worker in zip(repetitions, queues, workers, strict=True):
            key = f"stopped-{uuid.uuid4().hex[:8]}"
            record = submit_to_private_queue(
                owner=owner,
                task_type="diagnostics.count",
                queue=queue,
                task_input={"key": key, "seconds": TASK_SECONDS},
            )
            rounds.append((worker, STOPS[repetition % len(STOPS)], record, queue, key))
        for worker, _, record, _, _ in rounds:
            poll(api, str(record.pk), until=has_status("running"), timeout=20)
            wait_until(worker.busy_children, timeout=5, what="the child running the task")

        for worker, stop, *_ in rounds:
            stop(worker)
        grace_ends = time.monotonic() + GRACE_SECONDS
        for worker, *_ in rounds:
            worker.wait_then_kill(max(0.0, grace_ends - time.monotonic()))
            fleet.workers.remove(worker)

        for _, stop, record, queue, key in rounds:
            record.refresh_from_db()
            assert (record.status, record.attempts) == (TaskStatus.RUNNING, 1), stop.__name__
            stopped.append((record.pk, queue, key))

    fleet.start_beat()
    # The shared queues too: beat's reconciliation, which hands back the last round's task
    # once its heartbeat is overdue, runs there.
    every_queue = ("default", *(queue for _, queue, _ in stopped))
    fleet.start_workers_at_once([every_queue] * 3)
    for task_id, _, key in stopped:
        final = poll(
            api, str(task_id), until=has_status("succeeded", "failed", "cancelled"), timeout=60
        )[-1]
        assert (final["status"], final["attempts"]) == ("succeeded", 2), final
        assert DiagnosticCounter.objects.get(key=key).count == 1
