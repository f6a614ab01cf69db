"""The dashboard's workflows pages, as a browser without JavaScript meets them: the list and
its status filter, a workflow's stages and steps, cancel, the live fragment, a task's link
to its workflow; others' workflows are 404s."""

import re

import pytest
from django.test import Client

from tasks_app import dead_letters, workflows
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus, Workflow, WorkflowStatus
from tasks_app.transitions import task_claim, task_mark_failed, task_mark_succeeded
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SLEEP = {"task_type": "diagnostics.sleep", "input": {"seconds": 0, "steps": 1}}


def _text(response) -> str:
    return response.content.decode()


def _submit(owner, name="nightly", steps=None) -> Workflow:
    """A chain: 'first', then the group 'fan' of 'left' and 'right'."""
    return workflows.workflow_submit(
        owner=owner,
        name=name,
        steps=steps
        or [
            {"name": "first", **SLEEP},
            {"name": "fan", "group": [{"name": "left", **SLEEP}, {"name": "right", **SLEEP}]},
        ],
    )


def _step(workflow, name) -> TaskRecord:
    return TaskRecord.objects.filter(workflow=workflow, workflow_step=name).latest("created_at")


def _succeed(record, result) -> None:
    task_claim(task_id=str(record.pk), worker="w1")
    assert task_mark_succeeded(task_id=str(record.pk), result=result, in_workflow=True)


def _fail(record) -> None:
    task_claim(task_id=str(record.pk), worker="w1")
    task_mark_failed(task_id=str(record.pk), error_type="IOError", error_message="disk full")


def _succeeded_workflow(owner) -> Workflow:
    workflow = _submit(owner, name="done", steps=[{"name": "only", **SLEEP}])
    _succeed(_step(workflow, "only"), {"slept_seconds": 0.0, "steps": 1})
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCEEDED
    return workflow


def test_the_list_shows_the_users_workflows_newest_first_with_their_progress(
    browser, user, other_user
):
    older = _submit(user, name="older")
    _succeed(_step(older, "first"), {"ok": 1})
    newer = _submit(user, name="")
    theirs = _submit(other_user, name="theirs")

    response = browser.get("/workflows/")

    page = _text(response)
    assert response.status_code == 200
    listed = re.findall(r'id="workflow-([0-9a-f-]{36})"', page)
    assert listed == [str(newer.pk), str(older.pk)]
    assert str(theirs.pk) not in page
    row = page.split(f'id="workflow-{older.pk}"')[1]
    assert ">older</a>" in row and 'max="3" value="1"' in row and "1/3 (33.3%)" in row
    # A workflow without a name is shown by its id.
    assert f"{str(newer.pk)[:8]}</div>" in page
    assert 'href="/workflows/"' in _text(browser.get("/tasks/"))  # in the navigation


def test_the_list_filters_by_status_and_names_the_failed_step(browser, user):
    running = _submit(user, name="running")
    failed = _submit(user, name="failed")
    _fail(_step(failed, "first"))

    only_failed = _text(browser.get("/workflows/?status=failed"))
    assert str(failed.pk) in only_failed and str(running.pk) not in only_failed
    row = only_failed.split(f'id="workflow-{failed.pk}"')[1]
    assert ">Failed</span>" in row and '<span class="mono">first</span>' in row

    both = _text(browser.get("/workflows/?status=failed&status=running"))
    assert str(failed.pk) in both and str(running.pk) in both

    wrong = browser.get("/workflows/?status=exploded")
    assert wrong.status_code == 400
    assert "exploded is not one of the available choices" in _text(wrong)


def test_the_list_goes_by_cursor_pages(browser, user):
    made = [_submit(user, name=f"w{n}", steps=[{"name": "a", **SLEEP}]) for n in range(27)]

    first = _text(browser.get("/workflows/"))
    older = re.search(r'href="([^"]+)" rel="next"', first)[1].replace("&amp;", "&")
    second = _text(browser.get(older))

    first_ids = re.findall(r'id="workflow-([0-9a-f-]{36})"', first)
    second_ids = re.findall(r'id="workflow-([0-9a-f-]{36})"', second)
    assert (len(first_ids), len(second_ids)) == (25, 2)
    assert set(first_ids) | set(second_ids) == {str(workflow.pk) for workflow in made}
    assert browser.get("/workflows/?cursor=garbage").status_code == 404


def test_a_workflows_page_shows_its_stages_steps_and_tasks(browser, user):
    workflow = _submit(user)
    first = _step(workflow, "first")
    _succeed(first, {"slept_seconds": 0.0, "steps": 1})

    page = _text(browser.get(f"/workflows/{workflow.pk}/"))

    assert "<h1>nightly</h1>" in page
    assert "1/3 (33.3%)" in page
    assert "Stage 1: step first</h3>" in page
    assert "Stage 2: group fan" in page and "its 2 steps run at once" in page
    first_row = page.split('id="step-first"')[1].split("</tr>")[0]
    assert "diagnostics.sleep" in first_row and ">Succeeded</span>" in first_row
    assert f'href="/tasks/{first.pk}/"' in first_row
    left_row = page.split('id="step-left"')[1].split("</tr>")[0]
    assert f'href="/tasks/{_step(workflow, "left").pk}/"' in left_row
    assert ">Queued</span>" in left_row
    assert "Result" not in page
    assert 'id="cancel-workflow-' in page


def test_a_step_not_started_yet_and_a_requeued_steps_earlier_task(browser, user, staff_user):
    workflow = _submit(user)
    first = _step(workflow, "first")
    _fail(first)

    failed = _text(browser.get(f"/workflows/{workflow.pk}/"))
    assert ">Failed</span>" in failed
    assert "Step &#x27;first&#x27; failed: disk full" in failed
    assert ">Not started</span>" in failed.split('id="step-left"')[1].split("</tr>")[0]
    assert 'id="cancel-workflow-' in failed  # a failed workflow may still be cancelled

    dead_letters.dead_letter_requeue(dead_letter=DeadLetter.objects.get(task=first), by=staff_user)
    again = _text(browser.get(f"/workflows/{workflow.pk}/"))
    first_row = again.split('id="step-first"')[1].split("</tr>")[0]
    assert f'href="/tasks/{_step(workflow, "first").pk}/"' in first_row
    assert "Earlier:" in first_row and f'href="/tasks/{first.pk}/"' in first_row


def test_a_succeeded_workflow_shows_its_result_and_no_cancel(browser, user):
    workflow = _succeeded_workflow(user)

    page = _text(browser.get(f"/workflows/{workflow.pk}/"))

    assert ">Succeeded</span>" in page
    assert '<pre class="json">{\n  &quot;slept_seconds&quot;: 0.0,' in page
    assert "cancel-workflow-" not in page
    assert "data-task-events" not in page and "every 1s" not in page  # nothing moves


def test_cancel_cancels_the_workflow_and_its_unfinished_steps(browser, user):
    workflow = _submit(user)
    _succeed(_step(workflow, "first"), {"ok": 1})

    response = browser.post(f"/workflows/{workflow.pk}/cancel/", follow=True)

    assert response.redirect_chain == [(f"/workflows/{workflow.pk}/", 302)]
    assert "is cancelled" in _text(response)
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.CANCELLED
    assert _step(workflow, "first").status == TaskStatus.SUCCEEDED
    assert _step(workflow, "left").status == TaskStatus.CANCELLED
    assert "cancel-workflow-" not in _text(response)


def test_cancel_of_a_succeeded_workflow_is_a_message_not_an_error(browser, user):
    workflow = _succeeded_workflow(user)

    response = browser.post(f"/workflows/{workflow.pk}/cancel/", follow=True)

    assert response.status_code == 200
    assert "has already succeeded; it cannot be cancelled" in _text(response)
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCEEDED


def test_another_users_workflow_is_a_404_to_see_or_cancel(browser, other_user):
    theirs = _submit(other_user)

    assert browser.get(f"/workflows/{theirs.pk}/").status_code == 404
    assert browser.post(f"/workflows/{theirs.pk}/cancel/").status_code == 404
    assert browser.get("/workflows/not-a-uuid/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == WorkflowStatus.RUNNING


def test_staff_see_everyones_workflows_and_poll_them(client, user):
    workflow = _submit(user)
    client.force_login(UserFactory(is_staff=True))

    listed = _text(client.get("/workflows/"))
    page = _text(client.get(f"/workflows/{workflow.pk}/"))

    assert str(workflow.pk) in listed and "All workflows" in listed
    # Not the staff member's own tasks: their event stream would not carry its changes.
    assert 'hx-trigger="every 1s"' in page and "data-task-events" not in page


def test_a_running_workflow_follows_the_owners_events_and_answers_htmx_with_its_live_part(
    browser, user
):
    workflow = _submit(user)

    page = _text(browser.get(f"/workflows/{workflow.pk}/"))
    fragment = _text(browser.get(f"/workflows/{workflow.pk}/", headers={"HX-Request": "true"}))
    rows = _text(browser.get("/workflows/", headers={"HX-Request": "true"}))

    assert 'hx-trigger="task-changed from:body"' in page
    assert 'data-task-events="/api/v1/tasks/events?last_event_id=' in page
    # Any of the owner's task changes: a stage's new tasks have no id to wait for yet.
    assert "data-task-id" not in page
    assert fragment.lstrip().startswith('<div id="workflow-live"')
    assert "<html" not in fragment and 'id="step-left"' in fragment
    assert rows.lstrip().startswith('<div id="workflow-rows"') and "<html" not in rows


def test_a_steps_task_page_links_to_its_workflow(browser, user):
    workflow = _submit(user)
    first = _step(workflow, "first")

    page = _text(browser.get(f"/tasks/{first.pk}/"))

    assert (
        f'Step <span class="mono">first</span> of workflow <a href="/workflows/{workflow.pk}/">'
        "nightly</a>" in page
    )


def test_cancel_refuses_a_post_without_the_csrf_token(user):
    workflow = _submit(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.post(f"/workflows/{workflow.pk}/cancel/").status_code == 403
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.RUNNING


def test_the_pages_have_no_inline_script_or_style(browser, user):
    workflow = _submit(user)
    for path in ("/workflows/", f"/workflows/{workflow.pk}/"):
        text = _text(browser.get(path))
        assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", text)), path
        assert " style=" not in text and not re.search(r"<[^>]+\son[a-z]+=", text), path
