"""A chain with a group through a worker killed mid-step and a broker restart: every step
runs exactly once (counted by its effect), none is lost, the workflow succeeds."""

import pytest

from tasks_app.models import DiagnosticCounter, TaskRecord, Workflow
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _count(name: str, seconds: float) -> dict:
    return {
        "name": name,
        "task_type": "diagnostics.count",
        "input": {"key": name, "seconds": seconds},
    }


def test_a_workflow_survives_a_killed_worker_and_a_broker_restart(api, broker, fleet):
    doomed = fleet.start_worker("wf-doomed")
    fleet.start_worker("wf-survivor")
    fleet.start_beat()
    prefix = f"wf-{doomed.name[-6:]}"
    names = [f"{prefix}-first", *(f"{prefix}-g{i}" for i in range(3)), f"{prefix}-last"]
    response = api.post(
        "/api/v1/workflows/",
        {
            "name": "faults",
            "steps": [
                _count(names[0], 1),
                {"name": "fan", "group": [_count(name, 2) for name in names[1:4]]},
                _count(names[4], 1),
            ],
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    workflow_id = response.json()["id"]
    steps = TaskRecord.objects.filter(workflow_id=workflow_id)

    def supervised(condition):
        def check():
            fleet.replace_workers_lost_to_redis_restart()
            return condition()

        return check

    # The group runs: kill the worker with its children, whatever it holds.
    wait_until(
        lambda: steps.filter(workflow_step__in=names[1:4], status="running").exists(),
        timeout=60,
        what="the group running",
    )
    fleet.kill_worker(doomed)
    # Then the broker restarts (Redis: empty) while the workflow goes on.
    wait_until(
        lambda: steps.filter(workflow_step__in=names[1:4], status="succeeded").count() >= 1,
        timeout=60,
        what="a step of the group done",
    )
    broker.kill()
    broker.start()

    wait_until(
        supervised(lambda: Workflow.objects.get(pk=workflow_id).status != "running"),
        timeout=180,
        what="the workflow to end",
        every=0.5,
    )
    body = api.get(f"/api/v1/workflows/{workflow_id}/").json()
    assert body["status"] == "succeeded", body
    assert body["progress"] == {"steps_done": 5, "steps_total": 5}
    # Each step's effect happened once: none lost, none run twice.
    counts = dict(DiagnosticCounter.objects.filter(key__in=names).values_list("key", "count"))
    assert counts == dict.fromkeys(names, 1), counts
    assert steps.count() == 5  # one record per step: no stage was created twice
    assert body["result"] == {"key": names[4]}
