"""GET /api/v1/tasks/events: the caller's task changes as server-sent events.

Each event is one task's state after a change (``event: task``, its ``id`` a position in
the stream, its ``data`` the task as JSON without its input and result). A client that
reconnects with ``Last-Event-ID`` (EventSource does) gets what changed since; one that
starts with ``?last_event_id=`` starts from a position it was given (the dashboard's
pages carry one). docs/api.md has the protocol for API clients.

Served by the web process's event loop (config/asgi.py), a stream holds no thread or
database connection while it waits (tasks_app/events.py). Under a WSGI server, which
would give a whole worker to each stream, the answer ends after what has changed so far,
with a ``retry`` that makes EventSource ask again a second later: polling, by the same
protocol.
"""

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from tasks_app import events, selectors
from tasks_app.errors import EventStreamLimitReached
from tasks_app.models import TaskRecord

# The columns an event shows (a task without its input and result, which can be large:
# its links.self has them).
EVENT_FIELDS = (
    "task_type",
    "status",
    "progress_current",
    "progress_total",
    "progress_message",
    "error_type",
    "error_message",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "cancel_requested_at",
)
# How long EventSource waits before it reconnects: after a stream ends (a restart, the
# stream's time is up), and between the polls of the WSGI fallback.
RECONNECT_MILLISECONDS = 1000
# A comment this often keeps proxies from closing a quiet stream, and finds a gone client.
KEEPALIVE_SECONDS = 15.0
# An event id as events.moment_of reads it; another value is a 400.
EVENT_ID_SCHEMA = {"type": "string", "pattern": "^[0-9]{1,17}$"}
_AS_TIME = serializers.DateTimeField(read_only=True).to_representation
_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


# One event of the stream, in OpenAPI's words for server-sent events: the fields of a
# block. A block with no ``event`` (only ``retry`` or ``id``) dispatches nothing. (OpenAPI
# 3.0 cannot say that ``data`` holds JSON; the description does.)
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["task"]},
        "id": {"type": "string", "pattern": "^[0-9]{1,17}$"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "description": "The task as JSON: id, task_type, status, progress, error, "
            "attempts, created_at, started_at, finished_at, cancel_requested_at, links.",
        },
    },
}


class TaskEventsApi(APIView):
    """The caller's task changes, as server-sent events, live."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Stream your task changes (server-sent events)",
        description=(
            "A `text/event-stream` of the caller's own tasks as they change: each event is "
            "`event: task`, an `id` (a position in the stream) and `data`, the task as JSON "
            "as `GET /api/v1/tasks/{id}/` shows it but without `input` and `result` (follow "
            "`links.self` for those). Reconnect with the last id you saw in `Last-Event-ID` "
            "(EventSource does by itself) to get what changed meanwhile; a task may then come "
            "twice, always with its whole current state. Comments (`: keep-alive`) come "
            "every 15 s. The server ends a stream after a few minutes, or when the client "
            "reads too slowly; reconnect with `Last-Event-ID`. Under a WSGI server the answer "
            "ends after what has changed so far and its `retry` makes EventSource poll."
        ),
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                EVENT_ID_SCHEMA,
                OpenApiParameter.HEADER,
                description="Resume after this event id (the last one you received).",
            ),
            OpenApiParameter(
                "last_event_id",
                EVENT_ID_SCHEMA,
                OpenApiParameter.QUERY,
                description="The same as the header, for clients that cannot set headers.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                EVENT_SCHEMA, description="The stream, event by event."
            ),
            429: OpenApiResponse(
                description="Too many streams of yours are open (TASKS_EVENTS_MAX_STREAMS)."
            ),
        },
    )
    def get(self, request):
        since = _resume_position(request)
        owner_id = request.user.pk
        render = _renderer(request)
        if isinstance(request._request, ASGIRequest):
            limit = settings.TASKS_EVENTS_MAX_STREAMS
            slot = events.StreamSlot.take(owner_id, limit=limit)
            if slot is None:
                raise EventStreamLimitReached(limit=limit)
            # The stream reads on the feed's own connection; this one would sit idle as long
            # as the stream lasts (one per stream), so it goes back now.
            connection.close()
            stream = _live_events(owner_id=owner_id, since=since, render=render, slot=slot)
            slot.held_by(stream)
        else:
            stream = _events_so_far(owner_id=owner_id, since=since, render=render)
        response = StreamingHttpResponse(stream, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
        return response

    def perform_content_negotiation(self, request, force=False):
        # The answer is an event stream whatever the client accepts (EventSource asks for
        # text/event-stream, which no renderer serves), and an error is JSON; no ?format=.
        renderer = JSONRenderer()
        return renderer, renderer.media_type


def _resume_position(request) -> datetime | None:
    """Where to resume: the header's position, else the query's; each one given must be a
    position this service made."""
    header, query = request.headers.get("Last-Event-ID"), request.query_params.get("last_event_id")
    given = [value for value in (header, query) if value is not None]
    moments = [events.moment_of(value) for value in given]
    for value, moment in zip(given, moments, strict=True):
        if moment is None:
            raise ValidationError(
                {"last_event_id": [f"{value[:40]!r} is not an event id of this stream."]}
            )
    return moments[0] if moments else None


def _renderer(request) -> Callable[[TaskRecord], bytes]:
    """A record as its event, with absolute links made once per stream."""
    links = {
        name: request.build_absolute_uri(reverse(view, args=[_ID_PLACEHOLDER]))
        for name, view in (("self", "task-detail"), ("cancel", "task-cancel"))
    }

    def render(record: TaskRecord) -> bytes:
        task_id = str(record.pk)
        data = {
            "id": task_id,
            "task_type": record.task_type,
            "status": record.status,
            "progress": record.progress,
            "error": (
                {"type": record.error_type, "message": record.error_message}
                if record.error_type
                else None
            ),
            "attempts": record.attempts,
            "created_at": _AS_TIME(record.created_at),
            "started_at": _AS_TIME(record.started_at),
            "finished_at": _AS_TIME(record.finished_at),
            "cancel_requested_at": _AS_TIME(record.cancel_requested_at),
            "links": {name: url.replace(_ID_PLACEHOLDER, task_id) for name, url in links.items()},
        }
        position = events.cursor_of(record.changed_at)
        return f"id: {position}\nevent: task\ndata: {json.dumps(data)}\n\n".encode()

    return render


def _position_block(moment: datetime) -> bytes:
    """An id with no event: EventSource resumes from it, dispatching nothing."""
    return f"id: {events.cursor_of(moment)}\n\n".encode()


def _events_so_far(*, owner_id, since: datetime | None, render) -> Iterator[bytes]:
    """The WSGI fallback: what changed since ``since``, then the end (EventSource polls)."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    now = timezone.now()  # before the reads: a resume from here reads back the overlap too
    if since is not None:
        yield from map(render, _catch_up(owner_id=owner_id, since=since))
    yield _position_block(now)


def _catch_up(*, owner_id, since: datetime) -> Iterator[TaskRecord]:
    """Every change after ``since`` (and the overlap), page by page."""
    after = since - events.CHANGE_OVERLAP
    seen: set = set()
    while True:
        records = selectors.task_changes_for_owners(
            owner_ids=[owner_id], since=after, fields=EVENT_FIELDS, limit=events.READ_LIMIT
        )
        fresh = [record for record in records if (record.pk, record.changed_at) not in seen]
        yield from fresh
        if len(records) < events.READ_LIMIT or not fresh:
            return
        seen = {(record.pk, record.changed_at) for record in records}
        # >= the last moment, not >: the next change may share it; ``seen`` drops repeats.
        after = records[-1].changed_at - timedelta(microseconds=1)


async def _live_events(
    *, owner_id, since: datetime | None, render, slot: events.StreamSlot
) -> AsyncIterator[bytes]:
    try:
        async for block in _live_blocks(owner_id=owner_id, since=since, render=render):
            yield block
    finally:
        slot.release()


async def _live_blocks(*, owner_id, since: datetime | None, render) -> AsyncIterator[bytes]:
    feed = events.feed_of_this_loop(EVENT_FIELDS)
    ends_at = time.monotonic() + settings.TASKS_EVENTS_STREAM_SECONDS
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
    async with feed.subscription(owner_id) as subscription:
        # Subscribed first: a change made while the catch-up reads is in the queue.
        caught_up: dict = {}
        now = timezone.now()
        if since is not None:
            for record in await feed.read(lambda: list(_catch_up(owner_id=owner_id, since=since))):
                caught_up[record.pk] = record.changed_at
                yield render(record)
        yield _position_block(now)
        while (left := ends_at - time.monotonic()) > 0:
            try:
                record = await subscription.next_change(min(KEEPALIVE_SECONDS, left))
            except events.StreamEnded:
                return  # the client resumes from its last event
            if record is None:
                yield b": keep-alive\n\n"
            elif record.pk not in caught_up or record.changed_at > caught_up[record.pk]:
                yield render(record)
