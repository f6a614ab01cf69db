"""GET /api/v1/tasks/events served by the shipped web process (gunicorn, uvicorn workers),
with the relay and a real worker: what an API client holding a stream sees."""

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory
from tests.integration.conftest import WebProcess

pytestmark = pytest.mark.integration

# Long enough for a loaded 2-core machine; what is asserted is what arrives, not when.
SECONDS = 60


class EventStream:
    """A client of the stream, reading it block by block as EventSource would."""

    def __init__(self, base: str, token: str, *, last_event_id: str | None = None):
        address = urlsplit(base)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", "/api/v1/tasks/events", headers=headers)
        self.response = self.connection.getresponse()
        self.last_event_id: str | None = None

    def next_block(self) -> dict[str, str]:
        """The next block's fields (``id``, ``event``, ``data``, ``retry``, or ``comment``)."""
        block: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            line = line.decode().rstrip("\n")
            if not line:
                if block:
                    if "id" in block:
                        self.last_event_id = block["id"]
                    return block
                continue
            name, _, value = line.partition(":")
            block[name or "comment"] = value.removeprefix(" ")

    def tasks_until(self, done, *, seconds: float = SECONDS) -> list[dict]:
        """The task events up to and including the first for which ``done(task)`` is true."""
        deadline = time.monotonic() + seconds
        seen = []
        while time.monotonic() < deadline:
            block = self.next_block()
            if block.get("event") == "task":
                seen.append(json.loads(block["data"]))
                if done(seen[-1]):
                    return seen
        raise AssertionError(f"not seen within {seconds} s; seen: {seen}")

    def close(self) -> None:
        self.connection.close()


def api(base: str, token: str, method: str, path: str, body=None) -> tuple[int, dict]:
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, json.loads(answer) if answer else {}


def submit(base: str, token: str, **task_input) -> str:
    status, task = api(
        base,
        token,
        "POST",
        "/api/v1/tasks/",
        {"task_type": "diagnostics.sleep", "input": task_input},
    )
    assert status == 202, task
    return task["id"]


def user_with_token() -> str:
    return user_token_issue(user=UserFactory(username=f"sse-{uuid.uuid4().hex[:8]}"))[1]


def test_a_stream_shows_a_tasks_progress_and_end_as_they_happen(
    transactional_db, web, celery_worker
):
    token = user_with_token()
    stream = EventStream(web.url, token)
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    assert stream.next_block() == {"retry": "1000"}
    assert set(stream.next_block()) == {"id"}  # where the stream began

    task_id = submit(web.url, token, seconds=2, steps=4)
    seen = stream.tasks_until(lambda task: task["status"] == TaskStatus.SUCCEEDED)
    stream.close()

    assert {task["id"] for task in seen} == {task_id}
    # Changes close together may come as one event (a state, not a log), in order.
    order = ["queued", "running", "succeeded"]
    statuses = [order.index(task["status"]) for task in seen]
    assert statuses == sorted(statuses)
    assert "input" not in seen[0] and "result" not in seen[0]
    progress = [task["progress"]["current"] for task in seen if task["status"] == "running"]
    # Steps arrived while it ran, in order: live, not only the end.
    assert progress == sorted(progress) and set(progress) & {1, 2, 3}
    assert seen[-1]["progress"] == {
        "current": 4,
        "total": 4,
        "percent": 100.0,
        "message": "step 4 of 4",
    }
    assert seen[-1]["links"]["self"].endswith(f"/api/v1/tasks/{task_id}/")


def test_a_reconnect_with_last_event_id_gets_what_changed_meanwhile(
    transactional_db, web, celery_worker
):
    token = user_with_token()
    stream = EventStream(web.url, token)
    stream.next_block()
    position = stream.next_block()["id"]
    stream.close()

    task_id = submit(web.url, token, seconds=0)
    deadline = time.monotonic() + SECONDS
    while TaskRecord.objects.get(pk=task_id).status != TaskStatus.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    resumed = EventStream(web.url, token, last_event_id=position)
    seen = resumed.tasks_until(lambda task: task["status"] == TaskStatus.SUCCEEDED)
    resumed.close()

    assert seen[-1]["id"] == task_id


def test_another_users_changes_never_reach_a_stream(transactional_db, web, celery_worker):
    mine, theirs = user_with_token(), user_with_token()
    stream = EventStream(web.url, mine)

    their_task = submit(web.url, theirs, seconds=0)
    deadline = time.monotonic() + SECONDS
    while TaskRecord.objects.get(pk=their_task).status != TaskStatus.SUCCEEDED:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    my_task = submit(web.url, mine, seconds=0)
    seen = stream.tasks_until(lambda task: task["status"] == TaskStatus.SUCCEEDED)
    stream.close()

    # Their task changed, and finished, before mine was even submitted.
    assert {task["id"] for task in seen} == {my_task}


def test_open_streams_do_not_hold_up_api_requests(transactional_db, web, celery_worker):
    tokens = [user_with_token() for _ in range(3)]
    streams = [EventStream(web.url, tokens[n % 3]) for n in range(45)]
    assert {stream.response.status for stream in streams} == {200}

    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: api(web.url, tokens[n % 3], "GET", "/api/v1/tasks/"), range(40))
        )
    task_id = submit(web.url, tokens[0], seconds=0)

    assert {status for status, _ in answers} == {200}
    # And the streams still stream.
    assert streams[0].tasks_until(lambda task: task["id"] == task_id)
    for stream in streams:
        stream.close()


def test_past_the_stream_limit_a_user_gets_429_and_a_closed_stream_frees_its_slot(
    transactional_db, celery_worker, tmp_path
):
    web = WebProcess(
        log_path=tmp_path / "web.log",
        extra_env={"TASKS_EVENTS_MAX_STREAMS": "2"},
        extra_arguments=["--workers", "1"],
    )
    web.wait_until_ready()
    try:
        token = user_with_token()
        first, second = EventStream(web.url, token), EventStream(web.url, token)
        third = EventStream(web.url, token)
        refused = json.loads(third.response.read())
        second.close()
        third_again = _stream_when_a_slot_is_free(web.url, token)

        assert (first.response.status, second.response.status) == (200, 200)
        assert third.response.status == 429
        assert third.response.getheader("Content-Type") == "application/json"
        assert "2 task event streams" in refused["detail"]
        assert third_again.response.status == 200
        assert EventStream(web.url, user_with_token()).response.status == 200  # per user
    finally:
        web.stop()


def _stream_when_a_slot_is_free(base: str, token: str) -> EventStream:
    """The server frees a slot once it notices the client left (its next read of the socket)."""
    deadline = time.monotonic() + SECONDS
    while True:
        stream = EventStream(base, token)
        if stream.response.status == 200 or time.monotonic() > deadline:
            return stream
        stream.close()
        time.sleep(0.2)


def test_without_credentials_the_answer_is_a_json_401(transactional_db, web):
    address = urlsplit(web.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", "/api/v1/tasks/events", headers={"Accept": "text/event-stream"})
    response = connection.getresponse()

    assert response.status == 401
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read()) == {
        "detail": "Authentication credentials were not provided."
    }
    connection.close()


def test_a_stream_ends_after_its_time_and_says_when_to_come_back(
    transactional_db, celery_worker, tmp_path
):
    web = WebProcess(log_path=tmp_path / "web.log", extra_env={"TASKS_EVENTS_STREAM_SECONDS": "1"})
    web.wait_until_ready()
    try:
        stream = EventStream(web.url, user_with_token())
        blocks = []
        with pytest.raises(EOFError):
            while True:
                blocks.append(stream.next_block())
        assert blocks[0] == {"retry": "1000"}
    except TimeoutError:
        pytest.fail("the stream outlived TASKS_EVENTS_STREAM_SECONDS")
    finally:
        web.stop()


def test_a_stopping_web_process_ends_its_streams_instead_of_waiting_on_them(
    transactional_db, tmp_path
):
    web = WebProcess(log_path=tmp_path / "web.log")
    web.wait_until_ready()
    token = user_with_token()
    streams = [EventStream(web.url, token) for _ in range(4)]
    for stream in streams:
        stream.next_block()  # it is streaming

    web.process.terminate()
    # Within gunicorn's graceful timeout (30 s), which would otherwise kill the workers
    # with the streams still open.
    web.process.wait(timeout=20)
    web.stop()

    for stream in streams:
        with pytest.raises(EOFError):
            while True:
                stream.next_block()
    assert "was sent SIGKILL" not in web.log()
