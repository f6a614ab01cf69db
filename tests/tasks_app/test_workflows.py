"""Workflows without a worker: the definition's checks, and each step's finish moving the
workflow in the finish's transaction (the worker's part is driven through transitions)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import dead_letters
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus, Workflow
from tasks_app.transitions import task_claim, task_mark_failed, task_mark_succeeded

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/v1/workflows/"
SLEEP = {"task_type": "diagnostics.sleep", "input": {"seconds": 0, "steps": 1}}


def _submit(api, steps, **extra):
    return api.post(WORKFLOWS, {"name": "wf", "steps": steps, **extra}, format="json")


def _step(workflow_id, name) -> TaskRecord:
    return TaskRecord.objects.filter(workflow_id=workflow_id, workflow_step=name).latest(
        "created_at"
    )


def _succeed(record, result):
    task_claim(task_id=str(record.pk), worker="w1")
    assert task_mark_succeeded(task_id=str(record.pk), result=result, in_workflow=True)


def test_a_chain_passes_each_result_on_through_its_mapping(api):
    response = _submit(
        api,
        [
            {"name": "first", **SLEEP},
            {
                "name": "second",
                "task_type": "diagnostics.sleep",
                "input": {"steps": 2},
                "input_from": {"seconds": "first.result.slept_seconds"},
            },
        ],
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["progress"]) == ("running", {"steps_done": 0, "steps_total": 2})
    assert [s["status"] for s in body["steps"]] == ["queued", "not_started"]

    _succeed(_step(body["id"], "first"), {"slept_seconds": 0.5, "steps": 1})
    second = _step(body["id"], "second")
    assert second.input == {"seconds": 0.5, "steps": 2}
    shown = api.get(f"/api/v1/tasks/{second.pk}/").json()["workflow"]
    assert shown == {"id": body["id"], "step": "second", "url": body["links"]["self"]}
    assert second.status == TaskStatus.QUEUED
    _succeed(second, {"slept_seconds": 0.5, "steps": 2})

    done = api.get(body["links"]["self"]).json()
    assert (done["status"], done["progress"]["steps_done"]) == ("succeeded", 2)
    assert done["result"] == {"slept_seconds": 0.5, "steps": 2}


def test_a_group_runs_at_once_and_its_final_step_gets_every_result(api):
    response = _submit(
        api,
        [
            {"name": "fan", "group": [{"name": "a", **SLEEP}, {"name": "b", **SLEEP}]},
            {
                "name": "merge",
                "task_type": "diagnostics.fail",
                "input_from": {"message": "fan.results"},
            },
        ],
    )
    assert response.status_code == 202, response.content
    workflow_id = response.json()["id"]
    assert TaskRecord.objects.filter(workflow_id=workflow_id).count() == 2  # both at once
    _succeed(_step(workflow_id, "b"), {"n": "b"})
    assert not TaskRecord.objects.filter(workflow_step="merge").exists()  # waits for "a"
    _succeed(_step(workflow_id, "a"), {"n": "a"})
    # The list of results (in the group's order) is not a string: the step cannot start,
    # and the workflow says why, naming it.
    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.status, workflow.failed_step) == ("failed", "merge")
    assert "Not a valid string" in workflow.error_message


def test_a_steps_finish_reads_its_stage_without_the_inputs_and_results(api, settings):
    settings.TASKS_MAX_RUNNING_PER_USER = 10  # every step admitted at once
    # A group's every finish looks at its siblings: with large inputs and results, and a
    # hundred steps, reading whole records made that quadratic in bytes.
    group = [{"name": f"s{n}", **SLEEP} for n in range(5)]
    response = _submit(api, [{"name": "fan", "group": group}, {"name": "after", **SLEEP}])
    workflow_id = response.json()["id"]
    for name in ("s0", "s1", "s2", "s3"):
        _succeed(_step(workflow_id, name), {"n": name})

    with CaptureQueriesContext(connection) as captured:
        _succeed(_step(workflow_id, "s4"), {"n": "s4"})

    reads = [
        q["sql"] for q in captured if q["sql"].startswith("SELECT") and "workflow_step" in q["sql"]
    ]
    stage_reads = [sql for sql in reads if '"status"' in sql and '"result"' not in sql]
    assert len(stage_reads) == 1 and '"input"' not in stage_reads[0]
    assert _step(workflow_id, "after").status == TaskStatus.QUEUED  # the next stage started


def test_a_failed_step_fails_the_workflow_and_its_requeue_resumes_it(api, staff_user):
    response = _submit(
        api,
        [
            {"name": "first", **SLEEP},
            {"name": "second", **SLEEP},
        ],
    )
    workflow_id = response.json()["id"]
    first = _step(workflow_id, "first")
    task_claim(task_id=str(first.pk), worker="w1")
    task_mark_failed(task_id=str(first.pk), error_type="IOError", error_message="disk full")
    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.status, workflow.failed_step) == ("failed", "first")
    assert workflow.error_message == "Step 'first' failed: disk full"
    dead_letter = DeadLetter.objects.get(task=first)

    dead_letters.dead_letter_requeue(dead_letter=dead_letter, by=staff_user)
    assert Workflow.objects.get(pk=workflow_id).status == "running"
    again = _step(workflow_id, "first")
    assert again.pk != first.pk and again.requeued_from_id == first.pk
    _succeed(again, {"ok": True})
    _succeed(_step(workflow_id, "second"), {"ok": True})
    body = api.get(f"{WORKFLOWS}{workflow_id}/").json()
    assert body["status"] == "succeeded"
    assert body["steps"][0]["earlier_tasks"] == [str(first.pk)]


def test_cancelling_cancels_what_has_not_finished(api):
    response = _submit(
        api, [{"name": "fan", "group": [{"name": "a", **SLEEP}, {"name": "b", **SLEEP}]}]
    )
    workflow_id = response.json()["id"]
    _succeed(_step(workflow_id, "a"), {"ok": 1})
    cancelled = api.post(f"{WORKFLOWS}{workflow_id}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert _step(workflow_id, "a").status == TaskStatus.SUCCEEDED
    assert _step(workflow_id, "b").status == TaskStatus.CANCELLED
    assert api.post(f"{WORKFLOWS}{workflow_id}/cancel/").status_code == 200  # harmless


def test_cancelling_one_step_cancels_its_workflow(api):
    response = _submit(api, [{"name": "a", **SLEEP}, {"name": "b", **SLEEP}])
    workflow_id = response.json()["id"]
    step = _step(workflow_id, "a")
    assert api.post(f"/api/v1/tasks/{step.pk}/cancel/").status_code == 200
    assert Workflow.objects.get(pk=workflow_id).status == "cancelled"
    assert not TaskRecord.objects.filter(workflow_step="b").exists()


def test_a_succeeded_workflow_cannot_be_cancelled(api):
    workflow_id = _submit(api, [{"name": "a", **SLEEP}]).json()["id"]
    _succeed(_step(workflow_id, "a"), {"ok": 1})
    response = api.post(f"{WORKFLOWS}{workflow_id}/cancel/")
    assert response.status_code == 409
    assert "succeeded" in str(response.json())


def test_another_users_workflow_is_not_found(api, other_api):
    workflow_id = _submit(api, [{"name": "a", **SLEEP}]).json()["id"]
    assert other_api.get(f"{WORKFLOWS}{workflow_id}/").status_code == 404
    assert other_api.post(f"{WORKFLOWS}{workflow_id}/cancel/").status_code == 404
    assert other_api.get(WORKFLOWS).json()["results"] == []
    assert Workflow.objects.get().status == "running"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"name": "a", "task_type": "nope"}], "unknown task type 'nope'"),
        ([{"name": "a", **SLEEP}, {"name": "a", **SLEEP}], "Two steps or stages are named 'a'"),
        ([{"name": "a.b", **SLEEP}], "is not a valid name"),
        (
            [
                {"name": "a", **SLEEP},
                {**SLEEP, "name": "b", "input_from": {"seconds": "zz.result"}},
            ],
            "names no earlier stage",
        ),
        (
            [{"name": "a", **SLEEP}, {**SLEEP, "name": "b", "input_from": {"nope": "a.result"}}],
            "no field 'nope'",
        ),
        (
            [
                {"name": "a", **SLEEP},
                {**SLEEP, "name": "b", "input_from": {"seconds": "a.results"}},
            ],
            "is one step: use '.result'",
        ),
        (
            [{"name": "a", "task_type": "diagnostics.sleep", "input": {}}],
            "['seconds'] are required",
        ),
        (
            [{"name": "a", "task_type": "diagnostics.sleep", "input": {"seconds": -1}}],
            "its input is not valid",
        ),
        ([{"name": "a", "task_type": "diagnostics.sleep", "group": [SLEEP]}], "either a task_type"),
        ([{"name": "a", "group": []}], "may not be empty"),
    ],
)
def test_a_definition_that_cannot_run_is_a_400_naming_the_problem(api, steps, message):
    response = _submit(api, steps)
    assert response.status_code == 400
    assert message in str(response.json())
    assert not Workflow.objects.exists() and not TaskRecord.objects.exists()


def test_too_many_steps_is_a_400(api, settings):
    settings.WORKFLOWS_MAX_STEPS = 3
    response = _submit(api, [{"name": f"s{i}", **SLEEP} for i in range(4)])
    assert response.status_code == 400
    assert "at most 3 steps" in str(response.json())


def test_staff_see_every_workflow(api, staff_user):
    from tests.conftest import client_for

    _submit(api, [{"name": "a", **SLEEP}])
    assert len(client_for(staff_user).get(WORKFLOWS).json()["results"]) == 1


def test_staff_follow_and_cancel_workflows_in_the_admin(api, client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    workflow_id = _submit(api, [{"name": "a", **SLEEP}, {"name": "b", **SLEEP}]).json()["id"]
    client.force_login(staff_user)
    assert client.get("/admin/tasks_app/workflow/").status_code == 200
    assert client.get(f"/admin/tasks_app/workflow/{workflow_id}/change/").status_code == 200
    client.post(
        "/admin/tasks_app/workflow/",
        {"action": "cancel_selected", "_selected_action": [workflow_id]},
    )
    assert Workflow.objects.get(pk=workflow_id).status == "cancelled"
    assert _step(workflow_id, "a").status == TaskStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_a_cancel_while_a_worker_finishes_a_step_does_not_deadlock(user):
    """The worker's finish holds its step's row and waits for the workflow's; the cancel
    holds the workflow's and must not wait for that row (PostgreSQL would abort one)."""
    import threading
    import time

    from django.db import connection, transaction

    from tasks_app import workflows

    if connection.vendor != "postgresql":
        pytest.skip("row locks that can deadlock are PostgreSQL's (SQLite has one writer)")
    workflow = workflows.workflow_submit(
        owner=user,
        name="",
        steps=[{"name": "fan", "group": [{"name": "a", **SLEEP}, {"name": "b", **SLEEP}]}],
    )
    step = _step(workflow.pk, "a")
    task_claim(task_id=str(step.pk), worker="w1")
    holding = threading.Event()
    errors = []

    def worker_finishes():
        try:
            with transaction.atomic():
                TaskRecord.objects.filter(pk=step.pk).update(progress_message="finishing")
                holding.set()
                time.sleep(0.5)  # the cancel starts meanwhile
                task_mark_succeeded(task_id=str(step.pk), result={"ok": 1}, in_workflow=True)
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=worker_finishes)
    thread.start()
    holding.wait(5)
    workflows.workflow_cancel(workflow=workflow)
    thread.join(10)
    assert errors == []
    assert Workflow.objects.get(pk=workflow.pk).status == "cancelled"
    assert _step(workflow.pk, "a").status == TaskStatus.SUCCEEDED
    assert _step(workflow.pk, "b").status == TaskStatus.CANCELLED
