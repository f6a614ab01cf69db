"""The submit throttle holds across web processes: the shipped gunicorn, two workers, one limit."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory
from tests.integration.conftest import WebProcess

pytestmark = pytest.mark.integration

LIMIT = 5


@pytest.fixture
def web_server(transactional_db, tmp_path):
    """The shipped web process (two worker processes) on the test database, submits limited
    to LIMIT/hour."""
    web = WebProcess(log_path=tmp_path / "web.log", extra_env={"API_SUBMIT_RATE": f"{LIMIT}/hour"})
    web.wait_until_ready()
    yield web.url
    web.stop()


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
