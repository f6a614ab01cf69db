"""POST /api/v1/tasks/batch: many tasks in one request, all or none."""

import pytest
from django.test import override_settings

from tasks_app import dispatch
from tasks_app.broker import broker_queue_size
from tasks_app.models import TaskBatch, TaskRecord, TaskStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unread_queue")]

BATCH = "/api/v1/tasks/batch"


def sleep_task(seconds=0, **extra) -> dict:
    return {"task_type": "diagnostics.sleep", "input": {"seconds": seconds}, **extra}


def test_a_batch_is_submitted_in_order_and_published_once(api, user, unread_queue):
    items = [sleep_task(n, priority=n % 10) for n in range(250)]

    response = api.post(BATCH, {"tasks": items}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["count"] == 250 and len(body["tasks"]) == 250
    records = [TaskRecord.objects.get(pk=task["id"]) for task in body["tasks"]]
    assert [record.input["seconds"] for record in records] == list(range(250))
    assert [record.priority for record in records] == [n % 10 for n in range(250)]
    assert {record.owner for record in records} == {user}
    first = body["tasks"][0]
    assert first["status"] == "queued" and first["task_type"] == "diagnostics.sleep"
    assert first["links"]["self"].endswith(f"/api/v1/tasks/{first['id']}/")
    assert api.get(first["links"]["self"]).json()["id"] == first["id"]

    # The relay's pass publishes what the request committed: every queued one, once.
    queued = TaskRecord.objects.filter(owner=user, status=TaskStatus.QUEUED).count()
    assert dispatch.tasks_publish_pending(limit=1000) == queued
    assert broker_queue_size(unread_queue) == queued


def test_one_bad_item_refuses_the_whole_batch_naming_each_error(api):
    items = [sleep_task(1), sleep_task(-1), {"task_type": "nope"}, "not an object"]

    response = api.post(f"{BATCH}/", {"tasks": items}, format="json")

    assert response.status_code == 400
    errors = response.json()["tasks"]
    assert len(errors) == 4
    assert errors[0] == {}
    assert "seconds" in errors[1]["input"]
    assert "Unknown task type 'nope'" in errors[2]["task_type"][0]
    assert errors[3]  # not an object: said so, at its index
    assert not TaskRecord.objects.exists() and not TaskBatch.objects.exists()


@pytest.mark.parametrize("body", [{"tasks": []}, {"tasks": {}}, {}, {"tasks": "x"}])
def test_an_empty_or_malformed_batch_is_400(api, body):
    response = api.post(BATCH, body, format="json")

    assert response.status_code == 400
    assert "tasks" in response.json()
    assert not TaskRecord.objects.exists()


@override_settings(TASKS_BATCH_MAX_TASKS=5)
def test_a_batch_past_its_size_limit_is_400_before_any_item_is_checked(api):
    response = api.post(BATCH, {"tasks": [sleep_task()] * 6}, format="json")

    assert response.status_code == 400
    assert "no more than 5" in str(response.json()["tasks"])
    assert not TaskRecord.objects.exists()


@override_settings(TASKS_MAX_ACTIVE_PER_USER=10, TASKS_MAX_RUNNING_PER_USER=3)
def test_fair_use_applies_to_the_batch_as_a_whole(api, user):
    refused = api.post(BATCH, {"tasks": [sleep_task()] * 11}, format="json")

    assert refused.status_code == 429
    assert refused.json()["limit"] == 10 and "11 tasks" in refused.json()["detail"]
    assert not TaskRecord.objects.exists()

    accepted = api.post(BATCH, {"tasks": [sleep_task()] * 10}, format="json")

    assert accepted.status_code == 202
    statuses = [task["status"] for task in accepted.json()["tasks"]]
    assert statuses == ["queued"] * 3 + ["waiting"] * 7  # past the running limit: waiting


def test_the_idempotency_key_replays_the_whole_batch(api, other_api):
    items = {"tasks": [sleep_task(1), sleep_task(2)]}

    first = api.post(BATCH, items, format="json", HTTP_IDEMPOTENCY_KEY="nightly-1")
    again = api.post(BATCH, items, format="json", HTTP_IDEMPOTENCY_KEY="nightly-1")
    changed = api.post(
        BATCH, {"tasks": [sleep_task(3)]}, format="json", HTTP_IDEMPOTENCY_KEY="nightly-1"
    )
    others = other_api.post(BATCH, items, format="json", HTTP_IDEMPOTENCY_KEY="nightly-1")

    assert (first.status_code, first["Idempotent-Replayed"]) == (202, "false")
    assert (again.status_code, again["Idempotent-Replayed"]) == (202, "true")
    assert again.json()["tasks"] == first.json()["tasks"]
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 422
    assert others.status_code == 202 and others.json()["id"] != first.json()["id"]
    assert TaskRecord.objects.count() == 4  # two batches of two, one per user


def test_a_batch_needs_authentication(client):
    response = client.post(BATCH, {"tasks": [sleep_task()]}, content_type="application/json")

    assert response.status_code in (401, 403)
    assert not TaskRecord.objects.exists()
