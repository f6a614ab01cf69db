import pytest

from tasks_app.models import ApiKey, TaskStatus
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


def test_adding_an_api_key_in_admin_shows_the_key_once(admin_client, user):
    response = admin_client.post(
        "/admin/tasks_app/apikey/add/", {"owner": user.pk, "name": "from admin"}, follow=True
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="from admin")
    shown = next(str(m) for m in response.context["messages"] if "Copy it now" in str(m))
    raw_key = shown.rsplit(" ", 1)[-1]
    assert ApiKey.digest(raw_key) == api_key.key_digest


def test_celery_results_and_beat_admin_are_present(admin_client):
    assert admin_client.get("/admin/django_celery_results/taskresult/").status_code == 200
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
