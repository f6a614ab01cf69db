"""``Authorization: Token`` credentials: stored as digests, shown once, converted on upgrade."""

import datetime
import importlib
import io

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from tasks_app.models import UserToken
from tests.factories import UserFactory

TASKS = "/api/v1/tasks/"


def get_tasks(raw_key: str):
    return APIClient().get(TASKS, HTTP_AUTHORIZATION=f"Token {raw_key}")


def demo_token(*, settings) -> str:
    """The token ``bootstrap_demo`` prints, as bin/serve shows it."""
    settings.DEBUG = True
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    return next(
        line.removeprefix("API token: ")
        for line in out.getvalue().splitlines()
        if line.startswith("API token: ")
    )


@pytest.mark.django_db
def test_a_database_dump_holds_no_token_that_authenticates(settings):
    raw_key = demo_token(settings=settings)
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)

    assert get_tasks(raw_key).status_code == 200
    assert raw_key not in dump.getvalue()
    assert UserToken.objects.get().key_digest == UserToken.digest(raw_key)


@pytest.mark.django_db
def test_create_token_prints_a_new_token_and_earlier_ones_keep_working(user):
    first, second = io.StringIO(), io.StringIO()
    call_command("create_token", "alice", stdout=first)
    call_command("create_token", "alice", stdout=second)

    first_key, second_key = first.getvalue().strip(), second.getvalue().strip()
    assert first_key != second_key
    assert get_tasks(first_key).status_code == get_tasks(second_key).status_code == 200


@pytest.mark.django_db
def test_create_token_for_an_unknown_user_says_so():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_token", "nobody", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_deleted_token_or_an_inactive_user_is_401(user):
    out = io.StringIO()
    call_command("create_token", "alice", stdout=out)
    raw_key = out.getvalue().strip()

    user.is_active = False
    user.save()
    inactive = get_tasks(raw_key)
    UserToken.objects.filter(user=user).delete()
    user.is_active = True
    user.save()
    deleted = get_tasks(raw_key)

    assert (inactive.status_code, inactive.json()) == (401, {"detail": "User inactive or deleted."})
    assert (deleted.status_code, deleted.json()) == (401, {"detail": "Invalid token."})


@pytest.mark.django_db
def test_the_api_schema_still_documents_the_token_header(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()

    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }


# --- upgrade: DRF's authtoken rows become digests -------------------------------------------

AUTHTOKEN_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def authtoken_table(transactional_db):
    """The table DRF's authtoken app left in a database from before the upgrade."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) NOT NULL PRIMARY KEY, "
            "created timestamp NOT NULL, user_id integer NOT NULL UNIQUE)"
        )
    yield "authtoken_token"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE authtoken_token")


def test_upgrade_keeps_existing_tokens_working_and_deletes_their_clear_keys(authtoken_table):
    owner = UserFactory(username="veteran")
    created = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.UTC)
    # Stored as Django stores a time: in UTC, and naive on SQLite.
    stored = created.replace(tzinfo=None) if connection.vendor == "sqlite" else created
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [AUTHTOKEN_KEY, stored, owner.pk],
        )
    migration = importlib.import_module("tasks_app.migrations.0006_user_tokens_from_authtoken")

    with connection.schema_editor() as schema_editor:
        migration.tokens_from_authtoken(apps, schema_editor)

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        (left_in_clear,) = cursor.fetchone()
    assert left_in_clear == 0
    assert get_tasks(AUTHTOKEN_KEY).status_code == 200
    token = UserToken.objects.get()
    assert (token.user, token.created_at) == (owner, created)
