"""Events from finished tasks: the ``webhooks`` process turns each record a finish marked
(``tasks_app.announcements``) into events and their deliveries, in one transaction that
also clears the marks: each finish makes its events once, and only a finish that
committed makes any.

A task's end is ``task.<status>``; a documents task's end is also ``document.completed``
or ``document.failed``. A workflow's end, or its failure, is ``workflow.<status>``, made
from workflows marked the same way (``tasks_app.announcements``). The payload is thin, as
Standard Webhooks advises: what happened and the ids to fetch the rest with (the task's
result is at ``GET /api/v1/tasks/<id>/``).
"""

import json
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from documents.models import Document
from documents.services import PROCESS_TASK_TYPE
from tasks_app.announcements import (
    records_mark_announced,
    records_to_announce,
    workflows_mark_announced,
    workflows_to_announce,
)
from tasks_app.models import TaskRecord, TaskStatus, Workflow, WorkflowStatus
from webhooks.models import (
    CallbackSecret,
    EndpointStatus,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

TASK_EVENTS = {
    TaskStatus.SUCCEEDED: EventType.TASK_SUCCEEDED,
    TaskStatus.FAILED: EventType.TASK_FAILED,
    TaskStatus.CANCELLED: EventType.TASK_CANCELLED,
    TaskStatus.TIMED_OUT: EventType.TASK_TIMED_OUT,
}
DOCUMENT_EVENTS = {
    TaskStatus.SUCCEEDED: EventType.DOCUMENT_COMPLETED,
    TaskStatus.FAILED: EventType.DOCUMENT_FAILED,
    TaskStatus.TIMED_OUT: EventType.DOCUMENT_FAILED,
}
WORKFLOW_EVENTS = {
    WorkflowStatus.SUCCEEDED: EventType.WORKFLOW_SUCCEEDED,
    WorkflowStatus.FAILED: EventType.WORKFLOW_FAILED,
    WorkflowStatus.CANCELLED: EventType.WORKFLOW_CANCELLED,
}


@transaction.atomic
def events_make_for_finished(*, limit: int = 200) -> int:
    """Make the events and deliveries of up to ``limit`` announced task finishes and as
    many announced workflow moves; how many of both."""
    records = records_to_announce(limit=limit)
    workflows = workflows_to_announce(limit=limit)
    if not records and not workflows:
        return 0
    endpoints = _enabled_endpoints(
        {record.owner_id for record in records} | {workflow.owner_id for workflow in workflows}
    )
    now = timezone.now()
    events, deliveries = _task_events(records, endpoints, now)
    for workflow in workflows:
        event_type = WORKFLOW_EVENTS.get(workflow.status)
        wanting = [e for e in endpoints[workflow.owner_id] if event_type and e.wants(event_type)]
        if not wanting:
            continue  # it ran on since it was marked, or nobody wants this event
        event = WebhookEvent(
            id=WebhookEvent.new_id(),
            owner_id=workflow.owner_id,
            event_type=event_type,
            workflow_id=workflow.pk,
            payload=_payload(event_type, _workflow_data(workflow), now),
            created_at=now,
        )
        events.append(event)
        deliveries.extend(
            WebhookDelivery(event=event, endpoint=endpoint, url=endpoint.url, next_attempt_at=now)
            for endpoint in wanting
        )
    WebhookEvent.objects.bulk_create(events)
    WebhookDelivery.objects.bulk_create(deliveries)
    records_mark_announced(task_ids=[record.pk for record in records])
    workflows_mark_announced(workflow_ids=[workflow.pk for workflow in workflows])
    return len(records) + len(workflows)


def _enabled_endpoints(owner_ids: set) -> defaultdict:
    endpoints = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(
        owner_id__in=owner_ids, status=EndpointStatus.ENABLED
    ):
        endpoints[endpoint.owner_id].append(endpoint)
    return endpoints


def _task_events(records: list[TaskRecord], endpoints: defaultdict, now) -> tuple[list, list]:
    documents = _documents_of(records)
    events, deliveries = [], []
    for record in records:
        for event_type, data in _events_of(record, documents):
            targets = [
                (endpoint, endpoint.url)
                for endpoint in endpoints[record.owner_id]
                if endpoint.wants(event_type)
            ]
            if record.callback_url and event_type in TASK_EVENTS.values():
                targets.append((None, record.callback_url))
            if not targets:
                continue
            event = WebhookEvent(
                id=WebhookEvent.new_id(),
                owner_id=record.owner_id,
                event_type=event_type,
                task_id=record.pk,
                payload=_payload(event_type, data, now),
                created_at=now,
            )
            events.append(event)
            deliveries.extend(
                WebhookDelivery(event=event, endpoint=endpoint, url=url, next_attempt_at=now)
                for endpoint, url in targets
            )
    if any(record.callback_url for record in records):
        # Callbacks are signed with their owner's callback secret: made on first need.
        for owner_id in {record.owner_id for record in records if record.callback_url}:
            CallbackSecret.objects.get_or_create(owner_id=owner_id)
    return events, deliveries


def _documents_of(records: list[TaskRecord]) -> dict:
    ids = [
        record.input.get("document_id")
        for record in records
        if record.task_type == PROCESS_TASK_TYPE and record.status in DOCUMENT_EVENTS
    ]
    if not ids:
        return {}
    return {str(document.pk): document for document in Document.objects.filter(pk__in=ids)}


def _events_of(record: TaskRecord, documents: dict):
    yield TASK_EVENTS[record.status], _task_data(record)
    if record.task_type == PROCESS_TASK_TYPE and record.status in DOCUMENT_EVENTS:
        document = documents.get(str(record.input.get("document_id")))
        if document is not None and document.owner_id == record.owner_id:
            yield DOCUMENT_EVENTS[record.status], _document_data(document, record)


def _task_data(record: TaskRecord) -> dict:
    return {
        "id": str(record.pk),
        "task_type": record.task_type,
        "status": record.status,
        "progress": record.progress,
        "attempts": record.attempts,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "created_at": _iso(record.created_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
    }


def _workflow_data(workflow: Workflow) -> dict:
    return {
        "id": str(workflow.pk),
        "name": workflow.name,
        "status": workflow.status,
        "steps_done": workflow.steps_done,
        "steps_total": workflow.steps_total,
        "failed_step": workflow.failed_step,
        "error_message": workflow.error_message,
        "created_at": _iso(workflow.created_at),
        "finished_at": _iso(workflow.finished_at),
    }


def _document_data(document: Document, record: TaskRecord) -> dict:
    return {
        "id": str(document.pk),
        "filename": document.filename,
        "kind": document.kind,
        "status": "completed" if record.status == TaskStatus.SUCCEEDED else "failed",
        "page_count": document.page_count,
        "word_count": document.word_count,
        "chunk_count": document.chunk_count,
        "error_message": record.error_message,
        "task_id": str(record.pk),
    }


def _payload(event_type: str, data: dict, now) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": _iso(now), "data": data}, separators=(",", ":")
    )


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
