"""Password guessing at the sign-in pages: after AUTH_LOGIN_FAILURE_LIMIT wrong passwords
in a row for one username from one address, that pair is refused for a while (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SIGN_IN = "/accounts/login/"
ADMIN_SIGN_IN = "/admin/login/"
RIGHT, WRONG = "secret-password", "not-the-password"


def sign_in(client: Client, username: str, password: str, *, address="203.0.113.7", url=SIGN_IN):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_five_wrong_passwords_lock_that_username_from_that_address(client, settings, caplog):
    UserFactory(username="alice")

    wrong = [
        sign_in(client, "alice", WRONG).status_code for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    locked = sign_in(client, "alice", RIGHT)  # the right password, too late

    assert wrong[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form, with its error
    assert wrong[-1] == 429  # the failure that reaches the limit already answers the lockout
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page
    assert "Try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session
    # Each failure and the lockout are warnings, naming the pair and the page.
    lockout = next(r for r in caplog.records if "Locking out" in r.getMessage())
    assert lockout.levelname == "WARNING"
    assert 'username: "alice"' in lockout.getMessage()
    assert 'ip_address: "203.0.113.7"' in lockout.getMessage()


def test_tries_during_the_lockout_are_refused_without_being_stored(client, settings):
    UserFactory(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", WRONG)
    stored = AccessAttempt.objects.values("failures_since_start", "post_data", "attempt_time")
    before = stored.get()

    # Someone hammering the locked pair, with as much data as a form may carry.
    answers = [
        client.post(
            SIGN_IN,
            {"username": "alice", "password": WRONG, "padding": "p" * 100_000},
            REMOTE_ADDR="203.0.113.7",
        ).status_code
        for _ in range(20)
    ]

    assert answers == [429] * 20
    assert stored.get() == before  # neither counted, nor its data kept, nor the time moved


def test_the_lockout_leaves_the_same_user_from_elsewhere_and_other_users_alone(client, settings):
    UserFactory(username="alice")
    UserFactory(username="bob")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", WRONG)

    assert sign_in(Client(), "alice", RIGHT, address="198.51.100.4").status_code == 302
    assert sign_in(Client(), "bob", RIGHT).status_code == 302


def test_a_success_starts_the_count_again(client, settings):
    UserFactory(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", WRONG)
    assert sign_in(Client(), "alice", RIGHT).status_code == 302

    answers = [
        sign_in(client, "alice", WRONG).status_code for _ in range(settings.AXES_FAILURE_LIMIT - 1)
    ]

    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1)


def test_once_the_lockout_time_has_passed_the_right_password_signs_in(client, settings):
    UserFactory(username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", WRONG)
    # The failures as if made AUTH_LOGIN_LOCKOUT_MINUTES ago and a second more.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )

    assert sign_in(client, "alice", RIGHT).status_code == 302


def test_the_admins_sign_in_counts_and_locks_the_same_way(client, settings):
    UserFactory(username="root", is_staff=True, is_superuser=True)

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "root", WRONG, url=ADMIN_SIGN_IN)
    locked = sign_in(client, "root", RIGHT, url=ADMIN_SIGN_IN)

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    # The dashboard's page shares the count: the pair is locked there too.
    assert sign_in(client, "root", RIGHT).status_code == 429


@pytest.mark.parametrize("url", [SIGN_IN, ADMIN_SIGN_IN])
def test_an_overlong_username_or_user_agent_is_an_ordinary_failure(client, url):
    answers = [
        client.post(
            url,
            {"username": username, "password": WRONG},
            REMOTE_ADDR="203.0.113.7",
            HTTP_USER_AGENT="agent " * 2000,
        ).status_code
        for username in ("x" * 5000, "y" * 150)
    ]

    assert answers == [200, 200]  # the form again, with its error; never a 500
