"""A person's API keys page: create (shown once), use, revoke; others' keys are 404."""

import re

import pytest
from django.test import Client

from tasks_app import services
from tasks_app.models import ApiKey
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _shown_key(response) -> str:
    return re.search(r'id="new-key"[^>]*value="(jsk_[^"]+)"', response.content.decode()).group(1)


def test_a_created_key_is_shown_once_and_works_for_the_api(browser, user):
    response = browser.post("/keys/", {"name": "nightly export"})

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    raw_key = _shown_key(response)
    assert ApiKey.objects.get().owner == user
    api_answer = Client().get("/api/v1/tasks/", headers={"X-API-Key": raw_key})
    assert api_answer.status_code == 200
    # Never again: the list shows the name and the prefix only.
    listed = browser.get("/keys/").content.decode()
    assert "nightly export" in listed
    assert raw_key not in listed
    assert raw_key.split("_")[1] in listed


def test_a_revoked_key_stops_working(browser, user):
    api_key, raw_key = services.api_key_create(owner=user, name="laptop")

    response = browser.post(f"/keys/{api_key.pk}/revoke/", follow=True)

    assert "is revoked" in response.content.decode()
    assert Client().get("/api/v1/tasks/", headers={"X-API-Key": raw_key}).status_code == 401
    # Revoking again changes nothing and says the same.
    assert browser.post(f"/keys/{api_key.pk}/revoke/").status_code == 302


def test_another_users_key_cannot_be_seen_or_revoked(browser, other_user):
    theirs, raw_key = services.api_key_create(owner=other_user, name="their script")

    assert "their script" not in browser.get("/keys/").content.decode()
    assert browser.post(f"/keys/{theirs.pk}/revoke/").status_code == 404
    assert browser.post(f"/keys/{2**63}/revoke/").status_code == 404
    assert client_for(other_user).get("/api/v1/tasks/").status_code == 200
    assert Client().get("/api/v1/tasks/", headers={"X-API-Key": raw_key}).status_code == 200


def test_a_key_needs_a_name_of_at_most_100_characters(browser):
    assert browser.post("/keys/", {"name": ""}).status_code == 400
    too_long = browser.post("/keys/", {"name": "x" * 101})
    assert too_long.status_code == 400
    assert "at most 100 characters" in too_long.content.decode()
    assert ApiKey.objects.count() == 0


def test_past_the_limit_of_keys_the_page_says_to_revoke_one(browser, user, settings):
    settings.API_KEYS_MAX_PER_USER = 2
    services.api_key_create(owner=user, name="one")
    services.api_key_create(owner=user, name="two")

    response = browser.post("/keys/", {"name": "three"})

    assert response.status_code == 400
    assert "revoke one you no longer use" in response.content.decode()
    assert ApiKey.objects.count() == 2


def test_the_keys_page_needs_sign_in_and_csrf(user):
    assert Client().get("/keys/").status_code == 302
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/keys/", {"name": "x"}).status_code == 403
    assert ApiKey.objects.count() == 0
