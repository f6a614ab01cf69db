"""A database that drops every connection (a restart, a failover, an idle timeout) delays
nothing: the worker, its watch threads and the relay reconnect at their next use.

The test's own processes lose their connections the way a restarted PostgreSQL takes them
away: the server ends each backend (``pg_terminate_backend``, what a fast shutdown does to
its clients). Only the backends of this test's database are ended, never the test's own,
and the shared server itself keeps running.
"""

import pytest
from django.db import connection

from tasks_app.models import TaskRecord, TaskStatus
from tests.integration.test_task_lifecycle import has_status, poll, submit
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# Enough tasks that each of the worker's two pool processes meets its dropped connection.
TASKS_AFTER_THE_DROP = 6


def drop_every_other_connection_to_the_test_database() -> list[int]:
    """End every backend of the test database but the test's own; their pids."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        others = [pid for (pid,) in cursor.fetchall()]
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [others])
    return others


def still_there(pids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
        return cursor.fetchone()[0]


def test_tasks_after_the_database_dropped_every_connection_run_at_once_on_their_first_attempt(
    api, fleet
):
    fleet.start_worker()
    # Both pool processes hold a connection: each has run a task.
    before = [submit(api, "diagnostics.sleep", seconds=0.2, steps=1) for _ in range(4)]
    for task in before:
        poll(api, task["id"], until=has_status("succeeded"), timeout=30)

    dropped = drop_every_other_connection_to_the_test_database()
    assert len(dropped) >= 3, dropped  # the relay's and the pool processes' at least
    wait_until(lambda: still_there(dropped) == 0, timeout=10, what="the ended backends to go")

    # No beat runs here: a task that failed its claim would wait for reconciliation that
    # never comes, so each must succeed through the worker's own reconnection.
    after = [
        submit(api, "diagnostics.sleep", seconds=0.1, steps=1) for _ in range(TASKS_AFTER_THE_DROP)
    ]
    for task in after:
        poll(api, task["id"], until=has_status("succeeded"), timeout=30)

    records = TaskRecord.objects.filter(pk__in=[task["id"] for task in after])
    assert (
        sorted(records.values_list("status", "attempts"))
        == [(TaskStatus.SUCCEEDED, 1)] * TASKS_AFTER_THE_DROP
    )
    assert all(record.error_history == [] for record in records)
    assert all(not worker.has_exited() for worker in fleet.workers)
    assert "Traceback" not in fleet.workers[0].log(), fleet.log_tails()
