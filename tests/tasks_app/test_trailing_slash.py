"""Every API path answers with or without its trailing slash, a POST included (no redirect)."""

import pytest
from django.test import override_settings

from tests.conftest import client_for

SUBMISSION = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_the_trailing_slash_submits(api, debug):
    with override_settings(DEBUG=debug):
        response = api.post("/api/v1/tasks", SUBMISSION, format="json")

    assert response.status_code == 202, response.content
    task_id = response.json()["id"]
    assert api.get(f"/api/v1/tasks/{task_id}").json()["id"] == task_id
    assert api.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200


def test_lists_and_documents_answer_without_the_slash(api, staff_user):
    assert api.get("/api/v1/tasks").status_code == 200
    assert api.get("/api/v1/task-types").status_code == 200
    assert api.get("/api/v1/documents").status_code == 200
    assert api.get("/api/v1/documents/not-a-document").status_code == 404
    assert client_for(staff_user).get("/api/v1/dead-letters").status_code == 200
