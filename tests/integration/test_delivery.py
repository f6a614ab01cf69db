"""Retries, time limits and dead letters with a real worker (embedded and Postgres + Redis)."""

import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings

from tasks_app.models import DeadLetter, TaskRecord
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.test_task_lifecycle import has_status, poll, submit

pytestmark = pytest.mark.integration


def test_transient_errors_are_retried_with_growing_delays_until_success(live):
    task = submit(live, "diagnostics.flaky", failures=2)

    final = poll(live, task["id"], until=has_status("succeeded", "failed"), timeout=40)[-1]

    assert final["status"] == "succeeded"
    assert final["attempts"] == 3
    record = TaskRecord.objects.get(pk=task["id"])
    first, second = record.error_history
    assert second["retry_in"] > first["retry_in"]  # the policy's backoff grows
    # Each next attempt really waited at least its delay (brokers poll, so it may wait longer).
    failed_at = [datetime.fromisoformat(entry["at"]) for entry in record.error_history]
    waits = [(failed_at[1] - failed_at[0]), (record.finished_at - failed_at[1])]
    assert all(
        wait.total_seconds() >= entry["retry_in"]
        for wait, entry in zip(waits, [first, second], strict=True)
    )
    assert not DeadLetter.objects.filter(task_id=task["id"]).exists()


def test_a_permanent_error_fails_at_once_into_one_dead_letter(live):
    task = submit(live, "diagnostics.fail", message="bad input data")

    final = poll(live, task["id"], until=has_status("failed"))[-1]

    assert final["attempts"] == 1
    dead_letter = DeadLetter.objects.get(task_id=task["id"])
    assert (dead_letter.error_type, dead_letter.error_message) == (
        "DiagnosticFailure",
        "bad input data",
    )
    assert "Traceback" in dead_letter.attempts[0]["traceback"]


def test_exhausted_retries_leave_one_dead_letter_and_its_requeue_succeeds(live):
    key = f"flaky-{uuid.uuid4().hex[:8]}"
    task = submit(live, "diagnostics.flaky", failures=4, key=key)  # 1 + 3 retries all fail

    final = poll(live, task["id"], until=has_status("succeeded", "failed"), timeout=60)[-1]

    assert (final["status"], final["attempts"]) == ("failed", 4)
    dead_letter = DeadLetter.objects.get(task_id=task["id"])
    assert len(dead_letter.attempts) == 4
    staff = client_for(UserFactory(username=f"staff-{key}", is_staff=True))
    requeued = staff.post(f"/api/v1/dead-letters/{dead_letter.pk}/requeue/").json()
    new_id = requeued["requeued_task"]["id"]
    retried = poll(live, new_id, until=has_status("succeeded", "failed"), timeout=30)[-1]
    assert retried["status"] == "succeeded"
    assert retried["result"] == {"succeeded_on_attempt": 5}
    assert TaskRecord.objects.get(pk=new_id).requeued_from_id == uuid.UUID(task["id"])
    assert DeadLetter.objects.count() == 1


def test_soft_time_limit_lets_the_task_clean_up_and_ends_timed_out(live):
    task = submit(live, "diagnostics.overrun", seconds=20)
    scratch = Path(settings.VAR_DIR) / "tmp" / f"overrun-{task['id']}"
    seen = poll(live, task["id"], until=has_status("timed_out", "succeeded", "failed"), timeout=15)

    final = seen[-1]
    assert final["status"] == "timed_out"
    assert "time limit of 2 s" in final["error"]["message"]
    assert any(body["progress"]["message"].startswith("holding") for body in seen)
    assert not scratch.exists()  # its cleanup ran
    assert DeadLetter.objects.filter(task_id=task["id"], final_status="timed_out").exists()


def test_hard_time_limit_kills_a_task_that_ignores_the_soft_one(live):
    started = time.monotonic()
    task = submit(live, "diagnostics.overrun", seconds=30, ignore_soft_limit=True)

    final = poll(
        live, task["id"], until=has_status("timed_out", "succeeded", "failed"), timeout=20
    )[-1]

    assert final["status"] == "timed_out"
    assert "hard time limit" in final["error"]["message"]
    assert time.monotonic() - started < 15


def test_after_hard_time_limit_kills_the_worker_goes_on_running_tasks(live):
    # A pool process killed at its hard time limit is replaced; the tasks that follow must
    # start on the replacement, however often it happens.
    for _ in range(3):
        overrun = submit(live, "diagnostics.overrun", seconds=30, ignore_soft_limit=True)
        final = poll(
            live, overrun["id"], until=has_status("timed_out", "succeeded", "failed"), timeout=20
        )
        assert final[-1]["status"] == "timed_out"
        followers = [submit(live, "diagnostics.sleep", seconds=0.1) for _ in range(2)]
        for follower in followers:
            assert (
                poll(live, follower["id"], until=has_status("succeeded", "failed"), timeout=20)[-1][
                    "status"
                ]
                == "succeeded"
            )
