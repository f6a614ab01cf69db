"""The task event stream's positions, what counts as a change, and its answer under WSGI
(the fallback that makes EventSource poll). The live stream, held open by the shipped web
process, is in tests/integration/test_task_events.py."""

import gc
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import events, transitions
from tasks_app.apis import events as events_api
from tasks_app.models import TaskRecord, TaskStatus
from tests.conftest import client_for
from tests.factories import TaskRecordFactory, UserFactory

EVENTS = "/api/v1/tasks/events"


def blocks_of(response) -> list[dict[str, str]]:
    """The answer's blocks, each as its fields (``id``, ``event``, ``data``, ``retry``)."""
    if not hasattr(response, "event_text"):
        response.event_text = b"".join(response.streaming_content).decode()
    text = response.event_text
    blocks = []
    for chunk in text.split("\n\n"):
        if chunk:
            blocks.append(dict(line.split(": ", 1) for line in chunk.split("\n")))
    return blocks


def task_events(response) -> list[dict]:
    return [json.loads(block["data"]) for block in blocks_of(response) if "event" in block]


def test_a_position_stands_for_its_moment_to_the_microsecond():
    moment = timezone.now()
    assert events.moment_of(events.cursor_of(moment)) == moment


@pytest.mark.parametrize("given", ["abc", "-5", "12.5", "١٢٣", "9" * 18, " "])
def test_a_position_this_service_did_not_make_is_none(given):
    assert events.moment_of(given) is None


def test_without_a_position_the_answer_marks_where_it_began(db, user):
    before = int(events.cursor_of(timezone.now()))
    TaskRecordFactory(owner=user)

    response = client_for(user).get(EVENTS)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    retry, position = blocks_of(response)
    assert retry == {"retry": "1000"}
    assert set(position) == {"id"}
    assert before <= int(position["id"]) <= int(events.cursor_of(timezone.now()))


def test_from_a_position_it_sends_what_changed_since_and_only_the_callers(db, user, other_user):
    long_ago = timezone.now() - timedelta(hours=1)
    TaskRecordFactory(owner=user, changed_at=long_ago)
    position = events.cursor_of(timezone.now() - timedelta(minutes=5))
    mine = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING, progress_current=2)
    TaskRecordFactory(owner=other_user)

    response = client_for(user).get(EVENTS, HTTP_LAST_EVENT_ID=position)

    (event,) = task_events(response)
    assert event["id"] == str(mine.pk)
    assert event["status"] == "running"
    assert event["progress"]["current"] == 2
    assert "input" not in event and "result" not in event and "owner" not in event
    assert event["links"]["self"] == f"http://testserver/api/v1/tasks/{mine.pk}/"
    (block,) = [block for block in blocks_of(response) if "event" in block]
    assert block["event"] == "task"
    assert block["id"] == events.cursor_of(mine.changed_at)


def test_the_position_may_come_as_a_query_parameter(db, user):
    position = events.cursor_of(timezone.now() - timedelta(minutes=1))
    mine = TaskRecordFactory(owner=user)

    response = client_for(user).get(EVENTS, {"last_event_id": position})

    assert [event["id"] for event in task_events(response)] == [str(mine.pk)]


def test_staff_get_their_own_tasks_changes_only(db, user):
    staff = UserFactory(is_staff=True)
    TaskRecordFactory(owner=user)
    position = events.cursor_of(timezone.now() - timedelta(minutes=1))

    assert task_events(client_for(staff).get(EVENTS, HTTP_LAST_EVENT_ID=position)) == []


def test_progress_is_a_change_and_a_heartbeat_is_not(db, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING, attempts=1)
    first = TaskRecord.objects.get(pk=record.pk).changed_at

    transitions.task_heartbeat(task_id=str(record.pk), attempt=1)
    after_heartbeat = TaskRecord.objects.get(pk=record.pk).changed_at
    transitions.task_report_progress(task_id=str(record.pk), current=1, total=2, attempt=1)
    after_progress = TaskRecord.objects.get(pk=record.pk).changed_at

    assert after_heartbeat == first
    assert after_progress > first


def test_a_move_of_the_state_machine_is_a_change(db, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    first = TaskRecord.objects.get(pk=record.pk).changed_at

    assert TaskRecord.objects.transition(pk=record.pk, to=TaskStatus.CANCELLED)

    assert TaskRecord.objects.get(pk=record.pk).changed_at > first


def test_more_changes_than_one_read_takes_all_come_once(db, user, monkeypatch):
    monkeypatch.setattr(events, "READ_LIMIT", 3)
    position = events.cursor_of(timezone.now() - timedelta(minutes=1))
    moment = timezone.now()
    # Some share a moment, as changes of one batch may.
    records = [
        TaskRecordFactory(owner=user, changed_at=moment + timedelta(microseconds=n // 2))
        for n in range(8)
    ]

    sent = [
        event["id"]
        for event in task_events(client_for(user).get(EVENTS, {"last_event_id": position}))
    ]

    assert sorted(sent) == sorted(str(record.pk) for record in records)


def test_a_position_it_did_not_make_is_a_json_400_even_to_an_event_source(db, user):
    response = client_for(user).get(
        EVENTS, HTTP_LAST_EVENT_ID="yesterday", HTTP_ACCEPT="text/event-stream"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"last_event_id": ["'yesterday' is not an event id of this stream."]}


def test_without_credentials_it_is_a_json_401(db):
    from rest_framework.test import APIClient

    response = APIClient().get(EVENTS, HTTP_ACCEPT="text/event-stream")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_the_path_answers_with_and_without_its_slash(db, user):
    client = client_for(user)
    assert client.get(EVENTS).status_code == client.get(f"{EVENTS}/").status_code == 200


def test_a_stream_slot_is_given_back_when_its_stream_is_collected_unstarted():
    owner_id = 10**9
    slot = events.StreamSlot.take(owner_id, limit=1)
    assert events.StreamSlot.take(owner_id, limit=1) is None

    async def never_started():
        yield b""

    stream = never_started()
    slot.held_by(stream)
    del stream
    gc.collect()

    again = events.StreamSlot.take(owner_id, limit=1)
    assert again is not None
    again.release()
    again.release()  # twice is harmless
    assert events.StreamSlot.take(owner_id, limit=1) is not None


def test_the_events_fields_are_the_ones_read():
    # A field rendered but not read would cost a query per event.
    rendered = {"task_type", "status", "attempts", "created_at", "started_at", "finished_at"}
    assert rendered <= set(events_api.EVENT_FIELDS)
