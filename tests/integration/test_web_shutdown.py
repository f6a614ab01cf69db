"""A rolling restart of the web process: SIGTERM lets the requests in flight finish (their
answers arrive, their writes commit) before the process exits; it takes no new ones."""

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tasks_app.models import TaskRecord
from tests.integration.conftest import WebProcess
from tests.integration.test_task_events import user_with_token
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _read_answer(connection: socket.socket) -> bytes:
    connection.settimeout(20)
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def test_a_sigterm_lets_a_submit_in_flight_finish_and_takes_no_new_one(transactional_db, tmp_path):
    # One worker process, so that the request and the stop meet in the same one.
    web = WebProcess(log_path=tmp_path / "web.log", extra_arguments=("--workers", "1"))
    web.wait_until_ready()
    token = user_with_token()
    host, port = urlsplit(web.url).hostname, urlsplit(web.url).port
    body = json.dumps({"task_type": "diagnostics.sleep", "input": {"seconds": 0}}).encode()
    head = (
        "POST /api/v1/tasks/ HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    in_flight = socket.create_connection((host, port))
    in_flight.sendall(head + body[:10])  # the request has begun; its body is still coming
    time.sleep(0.5)

    web.process.terminate()
    wait_until(lambda: not _accepts(host, port), timeout=10, what="the listener to close")
    in_flight.sendall(body[10:])
    answer = _read_answer(in_flight)
    in_flight.close()

    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 202 Accepted", answer[:500]
    task_id = json.loads(answer.split(b"\r\n\r\n", 1)[1])["id"]
    assert TaskRecord.objects.filter(pk=task_id).exists()  # committed, not rolled back
    web.process.wait(timeout=20)
    web.stop()
    assert "was sent SIGKILL" not in web.log()
