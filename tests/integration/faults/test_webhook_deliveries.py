"""Webhooks through a worker killed mid-run and a sender killed mid-send: a receiver that
fails its first answer to every event still ends up with every task's end, each verified
with the reference Standard Webhooks library and identified by its webhook-id."""

import json
import sys
import time

import pytest
from standardwebhooks import Webhook

from tasks_app.models import TaskRecord
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

TASKS = 200
SENDER_ENV = {
    "WEBHOOKS_URL_ALLOWLIST": "127.0.0.1",
    "WEBHOOKS_RETRY_SCHEDULE": "0,0.3,0.6,1,2,3,5",
    "WEBHOOKS_POLL_SECONDS": "0.1",
    "TASKS_MAX_RUNNING_PER_USER": "8",
}


@pytest.fixture
def receiver():
    # The first answer to each event is a 500: every delivery needs its retry.
    receiver = Receiver(answer=lambda seen, _: (500 if seen == 1 else 200, {}, 0)).start()
    yield receiver
    receiver.stop()


def test_every_task_end_reaches_the_receiver_through_a_worker_and_a_sender_killed(
    api, fleet, receiver, settings
):
    settings.WEBHOOKS_URL_ALLOWLIST = ["127.0.0.1"]
    fleet.env.update(SENDER_ENV)
    endpoint = api.post(
        "/api/v1/webhooks/endpoints/",
        {"url": receiver.url, "event_types": ["task.succeeded", "task.failed"]},
        format="json",
    ).json()
    doomed = fleet.start_worker("doomed")
    fleet.start_worker("survivor")
    fleet.start_beat()
    sender = fleet._start("webhooks", [sys.executable, "manage.py", "webhooks_send"])
    sender.wait_for_log("webhooks sender started")

    task_input = {"task_type": "diagnostics.sleep", "input": {"seconds": 0.2, "steps": 1}}
    response = api.post("/api/v1/tasks/batch/", {"tasks": [task_input] * TASKS}, format="json")
    assert response.status_code == 202, response.content
    task_ids = {task["id"] for task in response.json()["tasks"]}

    wait_until(
        lambda: TaskRecord.objects.filter(pk__in=task_ids, status="succeeded").count() >= 40,
        timeout=60,
        what="40 tasks done",
    )
    busy = doomed.busy_children()
    fleet.kill_worker(doomed)  # mid-task, if it had one: its tasks run again elsewhere
    wait_until(lambda: len(receiver.requests) >= 20, timeout=60, what="deliveries under way")
    sender.kill()
    sender = fleet._start("webhooks-2", [sys.executable, "manage.py", "webhooks_send"])
    sender.wait_for_log("webhooks sender started")

    wait_until(
        lambda: TaskRecord.objects.filter(pk__in=task_ids, status="succeeded").count() == TASKS,
        timeout=180,
        what="every task to succeed",
    )

    def delivered() -> set[str]:
        verified = set()
        for request in list(receiver.requests):
            payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
            verified.add(payload["data"]["id"])
        return verified

    wait_until(lambda: delivered() >= task_ids, timeout=120, what="every task's event")
    time.sleep(1)  # late duplicates, if any, arrive now
    by_task: dict[str, set[str]] = {}
    for request in receiver.requests:
        body = json.loads(request.body)
        assert body["type"] == "task.succeeded"
        by_task.setdefault(body["data"]["id"], set()).add(request.headers["webhook-id"])
    assert set(by_task) == task_ids  # nothing invented
    # One event per task, however often it was sent: the receiver dedupes on the id.
    assert all(len(ids) == 1 for ids in by_task.values()), by_task
    print(f"killed worker's busy children: {busy}; requests: {len(receiver.requests)}")
