"""A finish marks its record in its own statement; the webhooks process makes its events
and deliveries once, and nothing for a finish that rolled back."""

import json

import pytest
from django.db import transaction

from tasks_app.models import TaskRecord, TaskStatus, Workflow
from tasks_app.transitions import task_claim, task_finish, task_mark_failed, task_mark_succeeded
from tasks_app.workflows import workflow_cancel
from tests.factories import TaskRecordFactory
from tests.tasks_app.test_workflows import SLEEP, _step
from tests.tasks_app.test_workflows import _submit as _submit_workflow
from tests.tasks_app.test_workflows import _succeed as _succeed_step
from webhooks.events import events_make_for_finished
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


def _running(owner, **fields):
    record = TaskRecordFactory(owner=owner, status=TaskStatus.QUEUED, **fields)
    task_claim(task_id=str(record.pk), worker="w1")
    return record


def _endpoint(owner, *event_types, url="https://hooks.example.com/in"):
    return endpoint_create(owner=owner, url=url, event_types=list(event_types))


def test_a_finish_of_an_owner_without_endpoints_is_not_marked(user):
    record = _running(user)
    task_mark_succeeded(task_id=str(record.pk), result={"ok": 1})
    assert TaskRecord.objects.get(pk=record.pk).announce_pending is False
    assert events_make_for_finished() == 0


def test_a_finish_makes_one_event_and_a_delivery_per_endpoint_once(user):
    first, second = _endpoint(user), _endpoint(user, "task.failed")
    record = _running(user)
    task_mark_succeeded(task_id=str(record.pk), result={"ok": 1})
    assert TaskRecord.objects.get(pk=record.pk).announce_pending is True

    assert events_make_for_finished() == 1
    assert events_make_for_finished() == 0  # the mark is cleared with the events' commit
    event = WebhookEvent.objects.get()
    body = json.loads(event.payload)
    assert body["type"] == "task.succeeded"
    assert body["data"]["id"] == str(record.pk)
    assert body["data"]["status"] == "succeeded"
    assert event.id.startswith("msg_") and "." not in event.id
    # The second endpoint wants failures only.
    assert list(WebhookDelivery.objects.values_list("endpoint", flat=True)) == [first.pk]
    assert not WebhookDelivery.objects.filter(endpoint=second).exists()
    assert TaskRecord.objects.get(pk=record.pk).announce_pending is False


def test_each_final_status_is_its_own_event_type(user):
    _endpoint(user)
    failed, cancelled = _running(user), TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    task_mark_failed(task_id=str(failed.pk), error_type="ValueError", error_message="bad input")
    task_finish(task_id=cancelled.pk, to=TaskStatus.CANCELLED)
    events_make_for_finished()
    payloads = {json.loads(e.payload)["data"]["id"]: e for e in WebhookEvent.objects.all()}
    assert payloads[str(failed.pk)].event_type == "task.failed"
    assert json.loads(payloads[str(failed.pk)].payload)["data"]["error_message"] == "bad input"
    assert payloads[str(cancelled.pk)].event_type == "task.cancelled"


def test_a_finish_that_rolled_back_announces_nothing(user):
    _endpoint(user)
    record = _running(user)
    with pytest.raises(RuntimeError), transaction.atomic():
        task_mark_succeeded(task_id=str(record.pk), result={"ok": 1})
        raise RuntimeError("the caller's transaction fails after the finish")
    record.refresh_from_db()
    assert (record.status, record.announce_pending) == (TaskStatus.RUNNING, False)
    assert events_make_for_finished() == 0
    assert not WebhookEvent.objects.exists()


def test_a_disabled_endpoint_gets_nothing(user):
    endpoint = _endpoint(user)
    WebhookEndpoint.objects.transition(pk=endpoint.pk, to="disabled")
    record = _running(user)
    task_mark_succeeded(task_id=str(record.pk), result=None)
    assert TaskRecord.objects.get(pk=record.pk).announce_pending is False


def test_a_callback_url_gets_the_tasks_own_end(user):
    record = _running(user, callback_url="https://client.example.com/done")
    task_mark_succeeded(task_id=str(record.pk), result=None)
    assert events_make_for_finished() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.url) == (None, "https://client.example.com/done")
    assert delivery.event.event_type == "task.succeeded"


def test_other_users_endpoints_get_nothing(user, other_user):
    _endpoint(other_user)
    record = _running(user)
    task_mark_succeeded(task_id=str(record.pk), result=None)
    assert events_make_for_finished() == 0
    assert not WebhookDelivery.objects.exists()


def test_the_one_statement_success_marks_the_record_too(user):
    """On PostgreSQL a success with Celery's result row is one autocommitted statement."""
    from django_celery_results.models import TaskResult

    from tasks_app.task_types import get_task_type

    _endpoint(user)
    record = _running(user)
    row = TaskResult(task_id=str(record.pk), status="SUCCESS", result="{}")
    assert task_mark_succeeded(
        task_id=str(record.pk),
        result={"ok": 1},
        result_row=row,
        task_type=get_task_type("diagnostics.sleep"),
    )
    assert TaskRecord.objects.get(pk=record.pk).announce_pending is True
    assert TaskResult.objects.filter(task_id=str(record.pk)).exists()
    assert events_make_for_finished() == 1


def test_old_events_are_pruned_unless_a_delivery_is_pending(user):
    from datetime import timedelta

    from django.utils import timezone

    from webhooks.services import events_prune

    _endpoint(user)
    for _ in range(3):
        task_mark_succeeded(task_id=str(_running(user).pk), result=None)
    events_make_for_finished()
    old, pending, recent = WebhookEvent.objects.all()
    WebhookEvent.objects.filter(pk__in=[old.pk, pending.pk]).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    WebhookDelivery.objects.exclude(event=pending).update(status="succeeded")
    assert events_prune(older_than=timezone.now() - timedelta(days=30), batch_size=1) == 1
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.parametrize(
    ("finish", "document_event"),
    [("succeeded", "document.completed"), ("failed", "document.failed")],
)
def test_a_documents_task_also_makes_its_documents_event(user, finish, document_event):
    from documents.models import Document
    from documents.services import PROCESS_TASK_TYPE

    endpoint = _endpoint(user, "document.completed", "document.failed")
    document = Document.objects.create(owner=user, filename="report.pdf", kind="pdf")
    record = _running(
        user, task_type=PROCESS_TASK_TYPE, queue="long", input={"document_id": str(document.pk)}
    )
    if finish == "succeeded":
        task_mark_succeeded(task_id=str(record.pk), result=None)
    else:
        task_mark_failed(task_id=str(record.pk), error_type="X", error_message="unreadable")
    events_make_for_finished()
    [event] = WebhookEvent.objects.all()  # the task's own event is not wanted here
    body = json.loads(event.payload)
    assert (body["type"], body["data"]["id"]) == (document_event, str(document.pk))
    assert body["data"]["filename"] == "report.pdf"
    assert body["data"]["task_id"] == str(record.pk)
    assert WebhookDelivery.objects.get().endpoint == endpoint


# --- Workflows ---------------------------------------------------------------------------


def _chain(api) -> str:
    response = _submit_workflow(api, [{"name": "first", **SLEEP}, {"name": "second", **SLEEP}])
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _workflow_events() -> list[dict]:
    return [
        json.loads(payload)
        for payload in WebhookEvent.objects.filter(event_type__startswith="workflow.")
        .order_by("created_at")
        .values_list("payload", flat=True)
    ]


def test_a_workflow_that_succeeds_is_one_workflow_succeeded_event(user, api):
    everything, tasks_only = _endpoint(user), _endpoint(user, "task.succeeded")
    workflow_id = _chain(api)
    _succeed_step(_step(workflow_id, "first"), {"n": 1})
    assert Workflow.objects.get(pk=workflow_id).announce_pending is False  # still running
    _succeed_step(_step(workflow_id, "second"), {"n": 2})

    events_make_for_finished()
    assert events_make_for_finished() == 0  # the marks are cleared with the events' commit

    [body] = _workflow_events()
    assert body["type"] == "workflow.succeeded"
    assert body["data"] | {"created_at": None, "finished_at": None} == {
        "id": workflow_id,
        "name": "wf",
        "status": "succeeded",
        "steps_done": 2,
        "steps_total": 2,
        "failed_step": "",
        "error_message": "",
        "created_at": None,
        "finished_at": None,
    }
    event = WebhookEvent.objects.get(event_type="workflow.succeeded")
    assert (str(event.workflow_id), event.task_id) == (workflow_id, None)
    # Only the endpoint that wants every event gets it; the steps' own task events go too.
    assert list(event.deliveries.values_list("endpoint", flat=True)) == [everything.pk]
    assert WebhookDelivery.objects.filter(endpoint=tasks_only).count() == 2


def test_a_failed_step_is_a_workflow_failed_event_and_a_cancel_a_workflow_cancelled_one(user, api):
    _endpoint(user, "workflow.failed", "workflow.cancelled")
    workflow_id = _chain(api)
    first = _step(workflow_id, "first")
    task_claim(task_id=str(first.pk), worker="w1")
    task_mark_failed(task_id=str(first.pk), error_type="IOError", error_message="disk full")
    events_make_for_finished()
    workflow_cancel(workflow=Workflow.objects.get(pk=workflow_id))
    events_make_for_finished()

    failed, cancelled = _workflow_events()
    assert (failed["type"], failed["data"]["failed_step"]) == ("workflow.failed", "first")
    assert "disk full" in failed["data"]["error_message"]
    assert (cancelled["type"], cancelled["data"]["status"]) == (
        "workflow.cancelled",
        "cancelled",
    )
    # The endpoint wants no task events: the step's failure made none for it.
    assert WebhookDelivery.objects.count() == 2


def test_a_workflow_of_an_owner_without_endpoints_is_not_marked(user, api):
    workflow_id = _chain(api)
    workflow_cancel(workflow=Workflow.objects.get(pk=workflow_id))

    assert Workflow.objects.get(pk=workflow_id).announce_pending is False
    assert events_make_for_finished() == 0
