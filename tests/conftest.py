import os
import shutil

import pytest
from rest_framework.test import APIClient

from tasks_app.tokens import user_token_issue
from tests.factories import UserFactory


def pytest_unconfigure(config):
    if os.environ.get("TESTS_OWN_VAR_DIR"):
        shutil.rmtree(os.environ["DJANGO_VAR_DIR"], ignore_errors=True)


def client_for(user) -> APIClient:
    """An API client that authenticates the way users do: with the user's token."""
    client = APIClient()
    _, raw_key = user_token_issue(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True)


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)
