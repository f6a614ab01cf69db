"""Events from finished tasks: the ``webhooks`` process turns each record a finish marked
(``tasks_app.announcements``) into events and their deliveries, in one transaction that
also clears the marks: each finish makes its events once, and only a finish that
committed makes any.

A task's end is ``task.<status>``; a documents task's end is also ``document.completed``
or ``document.failed``. The payload is thin, as Standard Webhooks advises: what happened
and the ids to fetch the rest with (the task's result is at ``GET /api/v1/tasks/<id>/``).
"""

import json
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from documents.models import Document
from documents.services import PROCESS_TASK_TYPE
from tasks_app.announcements import records_mark_announced, records_to_announce
from tasks_app.models import TaskRecord, TaskStatus
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


@transaction.atomic
def events_make_for_finished(*, limit: int = 200) -> int:
    """Make the events and deliveries of up to ``limit`` announced finishes; how many."""
    records = records_to_announce(limit=limit)
    if not records:
        return 0
    owners = {record.owner_id for record in records}
    endpoints = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(
        owner_id__in=owners, status=EndpointStatus.ENABLED
    ):
        endpoints[endpoint.owner_id].append(endpoint)
    documents = _documents_of(records)
    now = timezone.now()
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
    WebhookEvent.objects.bulk_create(events)
    WebhookDelivery.objects.bulk_create(deliveries)
    records_mark_announced(task_ids=[record.pk for record in records])
    return len(records)


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
