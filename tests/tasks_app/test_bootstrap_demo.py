"""bin/serve's demo user: only for local development, never a known password otherwise."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from tasks_app.models import UserToken
from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def bootstrap_demo() -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    return out.getvalue()


def printed_token(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("API token: ")]
    return line.removeprefix("API token: ")


def status_with_token(raw_key: str) -> int:
    return APIClient().get("/api/v1/tasks/", HTTP_AUTHORIZATION=f"Token {raw_key}").status_code


def test_in_development_it_creates_demo_with_password_demo_and_prints_a_working_token(settings):
    settings.DEBUG = True

    output = bootstrap_demo()

    demo = get_user_model().objects.get(username="demo")
    assert demo.is_superuser and demo.is_staff and demo.check_password("demo")
    assert "Demo user 'demo' created, password 'demo'" in output
    assert status_with_token(printed_token(output)) == 200


def test_each_development_run_prints_a_new_token_and_revokes_the_previous_one(settings):
    settings.DEBUG = True
    first = printed_token(bootstrap_demo())

    second_output = bootstrap_demo()
    second = printed_token(second_output)

    assert first != second
    assert (status_with_token(first), status_with_token(second)) == (401, 200)
    assert "Demo user 'demo' exists; its password is unchanged." in second_output
    assert UserToken.objects.count() == 1


def test_with_debug_off_it_creates_no_user_and_says_how_to_make_one(settings):
    settings.DEBUG = False

    output = bootstrap_demo()

    assert not get_user_model().objects.exists()
    assert not UserToken.objects.exists()
    assert not any(line.startswith("API token:") for line in output.splitlines())
    assert "manage.py createsuperuser" in output
    assert "manage.py create_token USERNAME" in output


def test_with_debug_off_the_known_demo_password_left_by_an_earlier_deployment_is_disabled(
    settings,
):
    settings.DEBUG = False
    demo = UserFactory(username="demo", password="demo", is_staff=True, is_superuser=True)
    _, raw_key = user_token_issue(user=demo)

    output = bootstrap_demo()

    demo.refresh_from_db()
    assert not demo.check_password("demo")
    assert not demo.has_usable_password()
    assert status_with_token(raw_key) == 401
    assert "Disabled the known password of user 'demo'" in output


def test_with_debug_off_a_demo_user_with_its_own_password_is_left_alone(settings):
    settings.DEBUG = False
    demo = UserFactory(username="demo", password="a-password-of-their-own")
    _, raw_key = user_token_issue(user=demo)

    output = bootstrap_demo()

    demo.refresh_from_db()
    assert demo.check_password("a-password-of-their-own")
    assert status_with_token(raw_key) == 200
    assert "Disabled" not in output
