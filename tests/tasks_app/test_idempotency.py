from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import services
from tasks_app.models import TaskRecord
from tasks_app.task_types import get_task_type
from tests.concurrency import call_at_once
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
BODY = {"task_type": "diagnostics.sleep", "input": {"seconds": 1}}


def submit(client, key: str, body=BODY):
    return client.post(TASKS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeated_key_returns_the_first_task_and_queues_nothing_more(api):
    first = submit(api, "order-42")
    second = submit(api, "order-42")

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert (first["Idempotent-Replayed"], second["Idempotent-Replayed"]) == ("false", "true")
    assert TaskRecord.objects.count() == 1


def test_the_same_key_with_another_submission_is_422(api):
    submit(api, "order-42")

    response = submit(api, "order-42", {"task_type": "diagnostics.sleep", "input": {"seconds": 2}})

    assert response.status_code == 422
    assert "already used for a different submission" in response.json()["detail"]
    assert TaskRecord.objects.count() == 1


def test_keys_belong_to_their_user(api, other_api):
    mine, theirs = submit(api, "shared-key"), submit(other_api, "shared-key")

    assert mine.json()["id"] != theirs.json()["id"]


def test_a_key_past_its_window_starts_a_new_task(api, settings):
    settings.TASKS_IDEMPOTENCY_TTL_SECONDS = 3600
    first = submit(api, "daily-report").json()
    TaskRecord.objects.filter(pk=first["id"]).update(created_at=timezone.now() - timedelta(hours=2))

    second = submit(api, "daily-report").json()

    assert second["id"] != first["id"]
    assert TaskRecord.objects.get(pk=second["id"]).idempotency_key == "daily-report"
    assert TaskRecord.objects.get(pk=first["id"]).idempotency_key is None


def test_without_a_key_every_submission_is_a_new_task(api):
    api.post(TASKS, BODY, format="json")
    api.post(TASKS, BODY, format="json")

    assert TaskRecord.objects.count() == 2


def test_an_overlong_key_is_400(api):
    response = submit(api, "k" * 256)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()


@pytest.mark.django_db(transaction=True)
def test_requests_with_one_key_at_once_make_one_task(unread_queue):
    owner = UserFactory()
    senders = 6

    def submit():
        return services.task_submit_once(
            owner=owner,
            task_type=get_task_type("diagnostics.sleep"),
            input_data={"seconds": 1},
            idempotency_key="order-42",
        )

    outcomes = call_at_once(submit, times=senders)

    errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    submissions = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert errors == []
    assert len({submission.record.pk for submission in submissions}) == 1
    assert sorted(submission.replayed for submission in submissions) == [False] + [True] * 5
    assert TaskRecord.objects.get(owner=owner).idempotency_key == "order-42"
