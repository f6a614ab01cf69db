import re

import pytest
from rest_framework.test import APIClient

from tasks_app.models import ApiKey, TaskStatus, UserToken
from tasks_app.tokens import user_token_issue
from tests.factories import TaskRecordFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tasks_app/taskrecord/"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_changelist_searches_by_id_and_by_username(admin_client, user, other_user):
    mine = TaskRecordFactory(owner=user)
    TaskRecordFactory(owner=other_user)

    by_id = admin_client.get(CHANGELIST, {"q": str(mine.pk)})
    by_name = admin_client.get(CHANGELIST, {"q": "bob"})

    assert by_id.status_code == by_name.status_code == 200
    assert by_id.context["cl"].result_count == 1
    assert by_name.context["cl"].result_count == 1


def test_detail_page_is_read_only(admin_client, user):
    record = TaskRecordFactory(owner=user)

    response = admin_client.get(f"{CHANGELIST}{record.pk}/change/")

    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}


def test_cancel_action_cancels_unfinished_and_reports_finished(admin_client, user):
    queued = TaskRecordFactory(owner=user)
    done = TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED)

    response = admin_client.post(
        CHANGELIST,
        {"action": "cancel_selected", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )

    assert response.status_code == 200
    queued.refresh_from_db()
    done.refresh_from_db()
    assert (queued.status, done.status) == ("cancelled", "succeeded")
    messages = [str(m) for m in response.context["messages"]]
    assert "Cancelled 1 task(s)." in messages
    assert "1 task(s) had already finished." in messages


def shown_secret(response) -> str:
    """The secret on the page that answers an add form (ShownOnceAdminMixin)."""
    (secret,) = re.findall(r'id="shown-once-secret" value="([^"]+)"', response.content.decode())
    return secret


def assert_kept_nowhere_on_the_client(client, response, secret: str) -> None:
    assert "no-store" in response["Cache-Control"]
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    assert all(secret not in str(value) for value in client.session.values())


def test_adding_an_api_key_in_admin_shows_the_key_once_and_stores_it_nowhere(admin_client, user):
    response = admin_client.post(
        "/admin/tasks_app/apikey/add/", {"owner": user.pk, "name": "from admin"}
    )

    assert response.status_code == 200
    raw_key = shown_secret(response)
    assert ApiKey.objects.get(name="from admin").key_digest == ApiKey.digest(raw_key)
    assert f"X-API-Key: {raw_key}" in response.content.decode()
    assert_kept_nowhere_on_the_client(admin_client, response, raw_key)
    # The next page the browser loads does not carry it either.
    changelist = admin_client.get("/admin/tasks_app/apikey/")
    assert raw_key not in changelist.content.decode()
    assert APIClient().get("/api/v1/tasks/", HTTP_X_API_KEY=raw_key).status_code == 200


def test_issuing_a_token_in_admin_shows_it_once_and_stores_it_nowhere(admin_client, user):
    response = admin_client.post("/admin/tasks_app/usertoken/add/", {"user": user.pk})

    assert response.status_code == 200
    raw_key = shown_secret(response)
    assert UserToken.objects.get(user=user).key_digest == UserToken.digest(raw_key)
    assert f"Authorization: Token {raw_key}" in response.content.decode()
    assert_kept_nowhere_on_the_client(admin_client, response, raw_key)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    assert api.get("/api/v1/tasks/").status_code == 200


def test_deleting_a_token_in_admin_revokes_it(admin_client, user):
    token, raw_key = user_token_issue(user=user)

    response = admin_client.post(
        f"/admin/tasks_app/usertoken/{token.pk}/delete/", {"post": "yes"}, follow=True
    )

    assert response.status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    assert api.get("/api/v1/tasks/").status_code == 401


def test_celery_results_and_beat_admin_are_present(admin_client):
    assert admin_client.get("/admin/django_celery_results/taskresult/").status_code == 200
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
