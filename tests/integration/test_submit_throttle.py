"""The submit throttle holds across web processes: gunicorn with two workers, one limit."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings

from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory
from tests.integration.conftest import _test_database_url

pytestmark = pytest.mark.integration

LIMIT = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def web_server(transactional_db, tmp_path):
    """gunicorn with two worker processes on the test database, submits limited to LIMIT/hour."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
        "API_SUBMIT_RATE": f"{LIMIT}/hour",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "2"]
    command += ["--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    server = subprocess.Popen(
        command, cwd=Path(settings.BASE_DIR), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/v1/health/live", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError((tmp_path / "gunicorn.log").read_text()[-3000:]) from None
            time.sleep(0.2)
    yield base
    server.terminate()
    server.wait(timeout=10)
    log.close()


def _submit(base: str, token: str) -> tuple[int, dict, str | None]:
    body = json.dumps({"task_type": "diagnostics.sleep", "input": {"seconds": 0}}).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/tasks/",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Connection": "close",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("Retry-After")


def test_the_submit_limit_holds_across_two_web_processes(web_server):
    owner = UserFactory(username="throttled")
    _, token = user_token_issue(user=owner)

    # Two at a time, so that both gunicorn workers take requests.
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: _submit(web_server, token), range(4 * LIMIT)))

    statuses = [status for status, _, _ in answers]
    assert statuses.count(202) == LIMIT, statuses
    assert statuses.count(429) == 3 * LIMIT, statuses
    _, refused, retry_after = next(answer for answer in answers if answer[0] == 429)
    assert "throttled" in refused["detail"].lower()
    assert retry_after is not None and 0 < int(retry_after) <= 3600
