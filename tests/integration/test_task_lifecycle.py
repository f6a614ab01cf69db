"""The job lifecycle end to end: HTTP in, a real worker and broker, HTTP out."""

import time

import pytest
from django_celery_results.models import TaskResult

from tasks_app.models import TaskRecord

pytestmark = pytest.mark.integration

TASKS = "/api/v1/tasks/"


def submit(api, task_type: str, **task_input) -> dict:
    response = api.post(TASKS, {"task_type": task_type, "input": task_input}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def poll(api, task_id: str, *, until, timeout: float = 30.0) -> list[dict]:
    """Poll the task's detail URL until ``until(body)``; return every body seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"{TASKS}{task_id}/")
        assert response.status_code == 200
        seen.append(response.json())
        if until(seen[-1]):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting; last seen: {seen[-1] if seen else None}")


def has_status(*statuses):
    return lambda body: body["status"] in statuses


def celery_state(task_id: str, *, timeout: float = 10.0) -> str | None:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            return state
        time.sleep(0.1)
    return state


def test_sleep_task_runs_to_success_with_rising_progress(live):
    task = submit(live, "diagnostics.sleep", seconds=2.4, steps=6)

    seen = poll(live, task["id"], until=has_status("succeeded"))

    final = seen[-1]
    assert final["result"] == {"slept_seconds": 2.4, "steps": 6}
    assert final["progress"]["current"] == final["progress"]["total"] == 6
    assert final["attempts"] == 1
    assert final["started_at"] and final["finished_at"]
    progress = [body["progress"]["current"] for body in seen if body["status"] == "running"]
    assert len(set(progress)) >= 3, progress  # the poller saw it move, not just start and end
    assert progress == sorted(progress)
    assert celery_state(task["id"]) == "SUCCESS"


def test_failing_task_ends_failed_with_its_error(live):
    task = submit(live, "diagnostics.fail", message="the disk is on fire")

    final = poll(live, task["id"], until=has_status("failed", "succeeded"))[-1]

    assert final["status"] == "failed"
    assert final["error"] == {"type": "DiagnosticFailure", "message": "the disk is on fire"}
    assert final["attempts"] == 1
    assert "Traceback" in TaskRecord.objects.get(pk=task["id"]).error_traceback
    assert celery_state(task["id"]) == "FAILURE"


def test_cancelled_running_task_stops_and_ends_cancelled(live, celery_worker):
    task = submit(live, "diagnostics.sleep", seconds=60, steps=60)
    poll(live, task["id"], until=lambda body: body["progress"]["current"] >= 1)

    cancel = live.delete(f"{TASKS}{task['id']}/")

    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    # The worker stops the body within seconds and Celery's row says so too.
    assert celery_state(task["id"], timeout=10) == "REVOKED"
    record = TaskRecord.objects.get(pk=task["id"])
    assert record.status == "cancelled"
    assert record.result is None
    stopped_at = record.progress_current
    time.sleep(1.5)
    assert TaskRecord.objects.get(pk=task["id"]).progress_current == stopped_at


def test_cancelled_queued_task_never_runs(live):
    # Both worker processes are busy, so the next task waits in the queue.
    blockers = [submit(live, "diagnostics.sleep", seconds=60, steps=60) for _ in range(2)]
    for blocker in blockers:
        poll(live, blocker["id"], until=has_status("running"))
    waiting = submit(live, "diagnostics.sleep", seconds=1, steps=1)
    # Its message is in the queue (a task cancelled before the relay publishes it never
    # gets one: tests/tasks_app/test_relay.py).
    published = TaskRecord.objects.filter(pk=waiting["id"], dispatched_at__isnull=False)
    deadline = time.monotonic() + 10
    while not published.exists():
        assert time.monotonic() < deadline, "the relay did not publish the task"
        time.sleep(0.05)

    cancel = live.post(f"{TASKS}{waiting['id']}/cancel/")
    for blocker in blockers:
        live.delete(f"{TASKS}{blocker['id']}/")

    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    # Once the worker is free it receives the message (or the revoke) and refuses it.
    assert celery_state(waiting["id"], timeout=20) == "REVOKED"
    record = TaskRecord.objects.get(pk=waiting["id"])
    assert (record.status, record.attempts, record.started_at) == ("cancelled", 0, None)
    assert record.progress_current == 0


def test_cancel_of_a_finished_task_is_409(live):
    task = submit(live, "diagnostics.sleep", seconds=0.1, steps=1)
    poll(live, task["id"], until=has_status("succeeded"))

    response = live.delete(f"{TASKS}{task['id']}/")

    assert response.status_code == 409
    assert response.json()["status"] == "succeeded"
    assert TaskRecord.objects.get(pk=task["id"]).status == "succeeded"


def test_transient_failures_are_retried_until_success(live):
    task = submit(live, "diagnostics.flaky", failures=2)

    seen = poll(live, task["id"], until=has_status("succeeded", "failed"), timeout=40)

    final = seen[-1]
    assert final["status"] == "succeeded"
    assert final["attempts"] == 3
    assert final["result"] == {"succeeded_on_attempt": 3}
    assert "retrying" in {body["status"] for body in seen}
    assert celery_state(task["id"]) == "SUCCESS"


def test_transient_failures_past_the_retry_limit_end_failed(live):
    task = submit(live, "diagnostics.flaky", failures=10)

    final = poll(live, task["id"], until=has_status("succeeded", "failed"), timeout=60)[-1]

    assert final["status"] == "failed"
    assert final["attempts"] == 4  # the first run and max_retries=3 retries
    assert final["error"] == {
        "type": "TransientTaskError",
        "message": "Transient failure on attempt 4.",
    }
    assert celery_state(task["id"]) == "FAILURE"
