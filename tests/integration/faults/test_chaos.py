"""300 tasks through killed pool children, a killed worker and a broker restart: none lost,
none run twice.

``diagnostics.count`` adds one to its key's counter in the transaction that marks the task
succeeded, so a counter above 1 is a task that took effect twice, and a task that is not
final (or failed without a dead letter) is a task lost.
"""

import random
import time
from collections import Counter

import pytest

from tasks_app import services
from tasks_app.models import FINAL_STATUSES, DeadLetter, DiagnosticCounter, TaskRecord
from tasks_app.task_types import get_task_type
from tasks_app.transitions import DEAD_STATUSES
from tests.integration.processes import sigkill
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASK_COUNT = 300
DEADLINE_SECONDS = 150


def test_chaos_300_tasks_with_killed_workers_and_a_broker_restart(owner, broker, fleet):
    first = fleet.start_worker("chaos-a")
    second = fleet.start_worker("chaos-b")
    fleet.start_beat()
    started = time.monotonic()
    count = get_task_type("diagnostics.count")
    durations = random.Random(TASK_COUNT)  # the same spread on every run
    ids = [
        services.task_submit(
            owner=owner,
            task_type=count,
            input_data={"key": f"chaos-{n}", "seconds": round(durations.uniform(0.05, 0.3), 3)},
        ).pk
        for n in range(TASK_COUNT)
    ]
    records = TaskRecord.objects.filter(pk__in=ids)
    faults = []

    def supervised(condition):
        # A worker that dies of the known Redis-restart crash is replaced, as systemd
        # would; any other exit fails the test.
        def check():
            fleet.replace_workers_lost_to_redis_restart()
            return condition()

        return check

    def when_succeeded(done: int, fault: str) -> None:
        wait_until(
            supervised(lambda: records.filter(status="succeeded").count() >= done),
            timeout=started + DEADLINE_SECONDS - time.monotonic(),
            what=f"{done} tasks to succeed before: {fault}",
        )
        faults.append(f"{time.monotonic() - started:5.1f} s, {done:3} done: {fault}")

    def kill_a_busy_child(worker) -> None:
        busy = wait_until(worker.busy_children, timeout=10, what=f"a busy child of {worker.name}")
        sigkill(busy[0])

    try:
        when_succeeded(30, "SIGKILL a pool child running a task")
        kill_a_busy_child(first)

        when_succeeded(80, "SIGKILL a worker with its children, start a replacement")
        fleet.kill_worker(second)
        fleet.start_worker("chaos-c")

        when_succeeded(130, "SIGKILL the broker, start it again (Redis: empty) on its port")
        broker.kill()
        broker.start()

        when_succeeded(190, "SIGKILL a pool child running a task, again")
        kill_a_busy_child(next(worker for worker in fleet.workers if not worker.has_exited()))

        wait_until(
            supervised(lambda: not records.exclude(status__in=FINAL_STATUSES).exists()),
            timeout=started + DEADLINE_SECONDS - time.monotonic(),
            what="every task to reach a final status",
            every=0.5,
        )
    finally:  # the figures, also when the test gives up waiting
        elapsed = time.monotonic() - started
        statuses = Counter(records.values_list("status", flat=True))
        dead_lettered = set(
            DeadLetter.objects.filter(task_id__in=ids).values_list("task_id", flat=True)
        )
        print(
            f"\nchaos: {TASK_COUNT} tasks in {elapsed:.1f} s: {dict(statuses)}; "
            f"dead-lettered {len(dead_lettered)}; "
            f"requeued after worker loss {records.filter(attempts__gt=1).count()}; "
            f"workers replaced after the Redis-restart crash {fleet.replaced_after_crash}\n  "
            + "\n  ".join(faults)
        )

    counters = dict(DiagnosticCounter.objects.values_list("key", "count"))
    keys = {pk: key for pk, key in records.values_list("pk", "input__key")}
    lost = [
        pk
        for pk, status in records.values_list("pk", "status")
        if status != "succeeded" and not (status in DEAD_STATUSES and pk in dead_lettered)
    ]
    assert lost == [], f"{len(lost)} tasks lost (not succeeded, not dead-lettered)"
    assert {key: n for key, n in counters.items() if n > 1} == {}, "tasks that ran twice"
    succeeded = records.filter(status="succeeded").values_list("pk", flat=True)
    assert [keys[pk] for pk in succeeded if counters.get(keys[pk]) != 1] == []
    assert [keys[pk] for pk in dead_lettered if counters.get(keys[pk], 0) != 0] == []
