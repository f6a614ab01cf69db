"""A workflow end to end on the configured stack: a chain with a group, submitted over
HTTP, run by a real worker, each step's result passed on; and a cancel mid-way."""

import pytest

from tests.integration.test_task_lifecycle import poll as poll_task
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _sleep(name, seconds, **extra):
    return {
        "name": name,
        "task_type": "diagnostics.sleep",
        "input": {"seconds": seconds, "steps": 1},
        **extra,
    }


def test_a_chain_with_a_group_runs_each_stage_after_the_one_before(live):
    response = live.post(
        "/api/v1/workflows/",
        {
            "name": "chain and group",
            "steps": [
                _sleep("first", 0.3),
                {"name": "fan", "group": [_sleep("left", 0.5), _sleep("right", 0.1)]},
                {
                    "name": "last",
                    "task_type": "diagnostics.sleep",
                    "input": {"steps": 3},
                    "input_from": {"seconds": "first.result.slept_seconds"},
                },
            ],
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    url = response.json()["links"]["self"]

    def finished():
        body = live.get(url).json()
        return body if body["status"] != "running" else None

    body = wait_until(finished, timeout=60, what="the workflow to finish")
    assert body["status"] == "succeeded", body
    assert body["progress"] == {"steps_done": 4, "steps_total": 4}
    assert body["result"] == {"slept_seconds": 0.3, "steps": 3}
    steps = {step["name"]: step for step in body["steps"]}
    tasks = {name: live.get(step["task"]).json() for name, step in steps.items()}
    assert all(task["status"] == "succeeded" for task in tasks.values())
    # Each stage started after the one before had finished, the group's two together.
    assert tasks["first"]["finished_at"] <= tasks["left"]["started_at"]
    assert tasks["first"]["finished_at"] <= tasks["right"]["started_at"]
    assert (
        max(tasks["left"]["finished_at"], tasks["right"]["finished_at"])
        <= (tasks["last"]["started_at"])
    )
    assert tasks["last"]["input"] == {"seconds": 0.3, "steps": 3}


def test_cancelling_a_running_workflow_stops_its_running_step(live):
    response = live.post(
        "/api/v1/workflows/",
        {"steps": [_sleep("long", 60), _sleep("never", 0)]},
        format="json",
    )
    body = response.json()
    task_url = body["steps"][0]["task"]
    wait_until(
        lambda: live.get(task_url).json()["status"] == "running", timeout=30, what="step running"
    )
    cancelled = live.post(body["links"]["cancel"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    task_id = task_url.rstrip("/").rsplit("/", 1)[-1]
    poll_task(live, task_id, until=lambda task: task["status"] == "cancelled", timeout=30)
    final = live.get(body["links"]["self"]).json()
    assert [step["status"] for step in final["steps"]] == ["cancelled", "not_started"]
