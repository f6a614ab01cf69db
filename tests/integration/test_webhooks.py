"""Webhooks end to end on the configured stack: a task submitted over HTTP runs on a real
worker, and its end reaches a loopback receiver, signed, through the webhooks process:
to the owner's endpoint and to the task's own callback_url."""

import json

import pytest
from standardwebhooks import Webhook

from tests.integration.conftest import WebhooksProcess
from tests.integration.test_task_lifecycle import has_status, poll
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

LOOPBACK_ALLOWED = {"WEBHOOKS_URL_ALLOWLIST": "127.0.0.1", "WEBHOOKS_POLL_SECONDS": "0.1"}


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sender(transactional_db, tmp_path):
    sender = WebhooksProcess(log_path=tmp_path / "webhooks.log", extra_env=LOOPBACK_ALLOWED)
    sender.wait_until_ready()
    yield sender
    sender.stop()


def test_a_finished_task_reaches_its_endpoint_and_its_callback_signed(
    live, receiver, sender, settings
):
    settings.WEBHOOKS_URL_ALLOWLIST = ["127.0.0.1"]
    endpoint = live.post(
        "/api/v1/webhooks/endpoints/", {"url": receiver.url + "/endpoint"}, format="json"
    ).json()
    callback_secret = live.get("/api/v1/webhooks/callback-secret/").json()["secret"]
    submitted = live.post(
        "/api/v1/tasks/",
        {
            "task_type": "diagnostics.sleep",
            "input": {"seconds": 0.2, "steps": 2},
            "callback_url": receiver.url + "/callback",
        },
        format="json",
    )
    assert submitted.status_code == 202, submitted.content
    task_id = submitted.json()["id"]
    poll(live, task_id, until=has_status("succeeded"))

    wait_until(lambda: len(receiver.requests) >= 2, timeout=30, what="two deliveries")
    by_path = {request.path: request for request in receiver.requests}
    endpoint_event = Webhook(endpoint["secret"]).verify(
        by_path["/hook/endpoint"].body, by_path["/hook/endpoint"].headers
    )
    callback_event = Webhook(callback_secret).verify(
        by_path["/hook/callback"].body, by_path["/hook/callback"].headers
    )
    for event in (endpoint_event, callback_event):
        assert event["type"] == "task.succeeded"
        assert event["data"]["id"] == task_id
        assert event["data"]["progress"]["current"] == 2

    # The receiver has the request before the sender has its answer and logs the attempt.
    log = wait_until(
        lambda: [
            delivery
            for delivery in live.get(endpoint["links"]["deliveries"]).json()["results"]
            if delivery["status"] != "pending"
        ],
        timeout=30,
        what="the attempt logged",
    )
    assert [(d["status"], d["last_status_code"]) for d in log] == [("succeeded", 200)]
    assert json.loads(live.get(log[0]["links"]["detail"]).json()["payload"]) == endpoint_event


def test_a_failed_task_is_announced_to_an_endpoint_that_wants_failures_only(
    live, receiver, sender, settings
):
    settings.WEBHOOKS_URL_ALLOWLIST = ["127.0.0.1"]
    endpoint = live.post(
        "/api/v1/webhooks/endpoints/",
        {"url": receiver.url, "event_types": ["task.failed"]},
        format="json",
    ).json()
    ok = live.post(
        "/api/v1/tasks/",
        {"task_type": "diagnostics.sleep", "input": {"seconds": 0, "steps": 1}},
        format="json",
    ).json()
    failing = live.post(
        "/api/v1/tasks/",
        {"task_type": "diagnostics.fail", "input": {"message": "on purpose"}},
        format="json",
    ).json()
    poll(live, ok["id"], until=has_status("succeeded"))
    poll(live, failing["id"], until=has_status("failed"))

    wait_until(lambda: receiver.requests, timeout=30, what="the failure's delivery")
    [request] = receiver.requests
    event = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert (event["type"], event["data"]["id"]) == ("task.failed", failing["id"])
    assert event["data"]["error_message"] == "on purpose"


def test_a_workflow_run_by_a_worker_reaches_its_endpoint_as_workflow_succeeded(
    live, receiver, sender, settings
):
    settings.WEBHOOKS_URL_ALLOWLIST = ["127.0.0.1"]
    endpoint = live.post(
        "/api/v1/webhooks/endpoints/",
        {"url": receiver.url + "/workflows", "event_types": ["workflow.succeeded"]},
        format="json",
    ).json()
    step = {"task_type": "diagnostics.sleep", "input": {"seconds": 0.1, "steps": 1}}
    submitted = live.post(
        "/api/v1/workflows/",
        {"name": "two steps", "steps": [{"name": "a", **step}, {"name": "b", **step}]},
        format="json",
    )
    assert submitted.status_code == 202, submitted.content
    workflow_id = submitted.json()["id"]

    [request] = wait_until(lambda: receiver.requests, timeout=60, what="the workflow's event")

    event = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert event["type"] == "workflow.succeeded"
    assert (event["data"]["id"], event["data"]["steps_done"]) == (workflow_id, 2)
    # The endpoint wants workflow events only: the steps' task events were not sent to it.
    assert len(receiver.requests) == 1
