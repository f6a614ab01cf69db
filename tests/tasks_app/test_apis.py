import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIClient

from tasks_app.apis.tasks import TaskRecordOutputSerializer
from tasks_app.models import ApiKey, TaskRecord, TaskStatus
from tasks_app.services import api_key_create
from tests.conftest import client_for
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"


def detail(record) -> str:
    return f"{TASKS}{record.pk}/"


# --- submit ------------------------------------------------------------------------------


def test_submit_answers_202_with_the_queued_record_and_links(api):
    response = api.post(
        TASKS,
        {"task_type": "diagnostics.sleep", "input": {"seconds": 2}, "priority": 7},
        format="json",
    )

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["task_type"] == "diagnostics.sleep"
    assert body["input"] == {"seconds": 2.0, "steps": 10}  # validated, defaults filled in
    assert body["priority"] == 7
    assert body["owner"] == "alice"
    assert body["links"]["self"].endswith(f"/api/v1/tasks/{body['id']}/")
    assert body["links"]["cancel"].endswith(f"/api/v1/tasks/{body['id']}/cancel/")
    assert response["Location"] == body["links"]["self"]
    # Committed for the relay to publish: the request does not wait for the broker.
    assert TaskRecord.objects.outbox().filter(pk=body["id"], owner__username="alice").exists()


def test_submit_answers_the_stored_record_as_drfs_generic_serializer_renders_it(api, rf):
    body = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}
    response = api.post(TASKS, body, format="json")
    assert response.status_code == 202, response.content

    record = TaskRecord.objects.get(pk=response.json()["id"])
    serializer = TaskRecordOutputSerializer(
        record, context={"request": Request(rf.post(TASKS, HTTP_HOST="testserver"))}
    )
    generic = serializers.ModelSerializer.to_representation(serializer, record)
    assert list(response.json().items()) == list(generic.items())


def test_submit_of_unknown_type_is_400_and_names_the_known_types(api):
    response = api.post(TASKS, {"task_type": "nope", "input": {}}, format="json")

    assert response.status_code == 400
    message = response.json()["task_type"][0]
    assert "Unknown task type 'nope'" in message and "diagnostics.sleep" in message
    assert not TaskRecord.objects.exists()


def test_submit_with_invalid_input_is_400_with_the_field_errors(api):
    response = api.post(
        TASKS, {"task_type": "diagnostics.sleep", "input": {"seconds": -1}}, format="json"
    )

    assert response.status_code == 400
    assert "seconds" in response.json()["input"]
    assert not TaskRecord.objects.exists()


def test_submit_with_missing_required_input_is_400(api):
    response = api.post(TASKS, {"task_type": "diagnostics.sleep"}, format="json")

    assert response.status_code == 400
    assert response.json()["input"]["seconds"] == ["This field is required."]


@pytest.mark.parametrize("priority", [-1, 10, "high"])
def test_submit_with_bad_priority_is_400(api, priority):
    response = api.post(
        TASKS,
        {"task_type": "diagnostics.fail", "input": {}, "priority": priority},
        format="json",
    )

    assert response.status_code == 400
    assert "priority" in response.json()


def test_submit_of_a_body_that_is_not_json_is_400(api):
    response = api.post(TASKS, data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert not TaskRecord.objects.exists()


def test_submit_as_form_data_is_415(api):
    response = api.post(TASKS, {"task_type": "diagnostics.fail"})

    assert response.status_code == 415
    assert "detail" in response.json()


def test_submit_with_input_that_is_not_an_object_is_400(api):
    response = api.post(TASKS, {"task_type": "diagnostics.fail", "input": [1]}, format="json")

    assert response.status_code == 400
    assert "input" in response.json()


def test_requests_without_credentials_are_401():
    anonymous = APIClient()

    submit = anonymous.post(TASKS, {"task_type": "diagnostics.fail"}, format="json")
    listing = anonymous.get(TASKS)

    assert submit.status_code == listing.status_code == 401
    assert submit.json()["detail"] == "Authentication credentials were not provided."
    assert not TaskRecord.objects.exists()


def test_a_wrong_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get(TASKS).status_code == 401


# --- API keys ----------------------------------------------------------------------------


def test_api_key_header_authenticates_as_its_owner(user):
    _, raw_key = api_key_create(owner=user, name="script")
    TaskRecordFactory(owner=user)

    response = APIClient().get(TASKS, HTTP_X_API_KEY=raw_key)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_api_key_last_used_at_is_written_at_most_once_a_minute(user):
    api_key, raw_key = api_key_create(owner=user, name="script")

    def last_used_at():
        return ApiKey.objects.get(pk=api_key.pk).last_used_at

    assert APIClient().get(TASKS, HTTP_X_API_KEY=raw_key).status_code == 200
    first_use = last_used_at()
    assert first_use is not None
    with CaptureQueriesContext(connection) as queries:
        assert APIClient().get(TASKS, HTTP_X_API_KEY=raw_key).status_code == 200
    assert last_used_at() == first_use
    assert not [query for query in queries if query["sql"].startswith("UPDATE")]

    # A minute later, the next request writes it again.
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(minutes=1))
    assert APIClient().get(TASKS, HTTP_X_API_KEY=raw_key).status_code == 200
    assert last_used_at() > first_use


def test_revoked_or_unknown_api_key_is_401(user):
    api_key, raw_key = api_key_create(owner=user, name="script")
    api_key.revoked_at = api_key.created_at
    api_key.save()

    assert APIClient().get(TASKS, HTTP_X_API_KEY=raw_key).status_code == 401
    assert APIClient().get(TASKS, HTTP_X_API_KEY="jsk_nope").status_code == 401


# --- list ---------------------------------------------------------------------------------


def test_list_shows_only_own_tasks_newest_first(api, user, other_user):
    older = TaskRecordFactory(owner=user)
    newer = TaskRecordFactory(owner=user)
    TaskRecordFactory(owner=other_user)

    response = api.get(TASKS)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(newer.pk), str(older.pk)]


def test_list_filters_by_status_and_type(api, user):
    TaskRecordFactory(owner=user, status=TaskStatus.RUNNING)
    failed = TaskRecordFactory(owner=user, status=TaskStatus.FAILED, task_type="diagnostics.fail")
    TaskRecordFactory(owner=user, status=TaskStatus.FAILED)

    response = api.get(TASKS, {"status": "failed", "task_type": "diagnostics.fail"})

    assert [row["id"] for row in response.json()["results"]] == [str(failed.pk)]


def test_list_with_an_unknown_status_is_400(api):
    response = api.get(TASKS, {"status": "exploded"})

    assert response.status_code == 400
    assert "status" in response.json()


def test_list_is_cursor_paginated(api, user):
    records = [TaskRecordFactory(owner=user) for _ in range(5)]

    first = api.get(TASKS, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    assert len(first["results"]) == len(second["results"]) == 2
    seen = [row["id"] for row in first["results"] + second["results"]]
    assert seen == [str(record.pk) for record in reversed(records)][:4]


def test_list_filters_by_several_statuses_without_distinct(api, user):
    queued = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    running = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING)
    TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED)

    with CaptureQueriesContext(connection) as captured:
        response = api.get(TASKS, {"status": ["queued", "running"]})

    assert [row["id"] for row in response.json()["results"]] == [str(running.pk), str(queued.pk)]
    assert not any("DISTINCT" in query["sql"] for query in captured)


def list_queries(api, params=None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert api.get(TASKS, params).status_code == 200
    return [query["sql"] for query in captured]


@pytest.mark.parametrize(
    "params", [None, {"status": "failed"}, {"task_type": "diagnostics.fail", "status": "failed"}]
)
def test_a_list_page_makes_the_same_queries_however_many_records_and_counts_none(api, user, params):
    TaskRecordFactory(owner=user, status=TaskStatus.FAILED, task_type="diagnostics.fail")
    few = list_queries(api, params)
    for _ in range(12):
        TaskRecordFactory(
            owner=user,
            status=TaskStatus.FAILED,
            task_type="diagnostics.fail",
            error_type="Boom",
            result={"x": 1},
            progress_total=3,
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )

    many = list_queries(api, params)

    assert len(many) == len(few)  # a field the serializer reads but the query defers adds one
    assert not any("COUNT(" in sql.upper() for sql in many)
    listing = [sql for sql in many if "tasks_app_taskrecord" in sql]
    assert len(listing) == 1
    # Only what the response shows: no tracebacks, error histories, or the owner's password.
    assert "error_traceback" not in listing[0] and "password" not in listing[0]


def test_detail_is_one_query_of_the_columns_it_shows(api, user):
    record = TaskRecordFactory(owner=user, error_type="Boom", finished_at=timezone.now())

    with CaptureQueriesContext(connection) as captured:
        body = api.get(detail(record)).json()

    records = [query["sql"] for query in captured if "tasks_app_taskrecord" in query["sql"]]
    assert len(records) == 1 and "error_traceback" not in records[0]
    assert body["owner"] == "alice"
    assert body["links"] == {
        "self": f"http://testserver{detail(record)}",
        "cancel": f"http://testserver{detail(record)}cancel/",
    }


def test_a_record_renders_as_drfs_generic_serializer_renders_it(user, rf):
    """The output serializer builds its dict directly, for speed: same keys, order, values."""
    now = timezone.now()
    records = [
        TaskRecordFactory(owner=user),
        TaskRecordFactory(
            owner=user,
            status=TaskStatus.FAILED,
            input={"seconds": 2, "when": "2026-01-01"},
            progress_current=3,
            progress_total=4,
            progress_message="almost",
            error_type="Boom",
            error_message="it broke",
            attempts=3,
            started_at=now,
            finished_at=now,
        ),
        TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED, result=[1, {"a": None}]),
        TaskRecordFactory(owner=user, status=TaskStatus.CANCELLED, cancel_requested_at=now),
    ]
    context = {"request": Request(rf.get("/api/v1/tasks/"))}

    for record in records:
        serializer = TaskRecordOutputSerializer(record, context=context)
        generic = serializers.ModelSerializer.to_representation(serializer, record)

        assert list(serializer.data.items()) == list(generic.items())


def test_staff_list_everyone(staff_user, user, other_user):
    TaskRecordFactory(owner=user)
    TaskRecordFactory(owner=other_user)

    response = client_for(staff_user).get(TASKS)

    assert {row["owner"] for row in response.json()["results"]} == {"alice", "bob"}


# --- detail and ownership ----------------------------------------------------------------


def test_detail_shows_progress_result_and_error(api, user):
    record = TaskRecordFactory(
        owner=user,
        status=TaskStatus.FAILED,
        progress_current=1,
        progress_total=4,
        progress_message="step 1",
        error_type="DiagnosticFailure",
        error_message="boom",
    )

    body = api.get(detail(record)).json()

    assert body["status"] == "failed"
    assert body["progress"] == {"current": 1, "total": 4, "percent": 25.0, "message": "step 1"}
    assert body["error"] == {"type": "DiagnosticFailure", "message": "boom"}
    assert body["result"] is None


def test_another_users_task_is_404_for_detail_and_cancel_and_absent_from_list(other_api, user):
    record = TaskRecordFactory(owner=user)

    assert other_api.get(detail(record)).status_code == 404
    assert other_api.delete(detail(record)).status_code == 404
    assert other_api.post(f"{detail(record)}cancel/").status_code == 404
    assert other_api.get(TASKS).json()["results"] == []
    record.refresh_from_db()
    assert record.status == TaskStatus.QUEUED


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
def test_unknown_or_malformed_id_is_404_with_a_json_body(api, task_id):
    response = api.get(f"{TASKS}{task_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No task with this id."}


# --- cancel -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["delete", "post_cancel"])
def test_cancel_of_a_queued_task_answers_the_cancelled_record(api, user, method):
    record = TaskRecordFactory(owner=user)

    if method == "delete":
        response = api.delete(detail(record))
    else:
        response = api.post(f"{detail(record)}cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_requested_at"] is not None


def test_cancel_twice_answers_200_both_times(api, user):
    record = TaskRecordFactory(owner=user)

    assert api.delete(detail(record)).status_code == 200
    assert api.delete(detail(record)).status_code == 200


def test_cancel_of_a_finished_task_is_409_with_its_status(api, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED)

    response = api.delete(detail(record))

    assert response.status_code == 409
    assert response.json()["status"] == "succeeded"
    assert "cannot be cancelled" in response.json()["detail"]


# --- task types and docs -----------------------------------------------------------------


def test_task_types_list_names_queues_and_input_fields(api):
    response = api.get("/api/v1/task-types/")

    assert response.status_code == 200
    types = {row["name"]: row for row in response.json()}
    sleep = types["diagnostics.sleep"]
    assert sleep["queue"] == "long"
    assert sleep["input_schema"]["seconds"]["type"] == "float"
    assert sleep["input_schema"]["seconds"]["required"] is True
    assert sleep["input_schema"]["steps"]["max_value"] == 1000
    assert "diagnostics.fail" in types


def test_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = api.get("/api/docs/")

    assert schema.status_code == 200
    assert "/api/v1/tasks/" in schema.json()["paths"]
    assert docs.status_code == 200
