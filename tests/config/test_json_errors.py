"""Every answer under /api/ is JSON, Django's own 400, 404 and 500 included."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_an_unknown_api_url_is_a_json_404(api):
    response = api.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_api_url_is_a_json_404_without_credentials_too():
    response = APIClient().post("/api/nothing", data="{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_wrong_method_is_a_json_405(api):
    response = api.put("/api/v1/task-types/", data="{}", content_type="application/json")

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "PUT" not allowed.'}


def test_a_request_for_an_unknown_host_is_a_json_400(api):
    response = api.get("/api/v1/task-types/", HTTP_HOST="evil.example.com")

    assert response.status_code == 400
    assert response.json() == {"detail": "Malformed request."}


def test_outside_the_api_django_keeps_its_html_pages(admin_client):
    response = admin_client.get("/admin/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.config.urls_with_a_failing_view")
def test_a_crash_in_an_api_view_is_a_json_500(api):
    api.raise_request_exception = False

    response = api.get("/api/v1/failing/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "A server error occurred."}


@pytest.mark.urls("tests.config.urls_with_a_failing_view")
def test_a_crash_outside_the_api_is_still_django_s_html_500(client):
    client.raise_request_exception = False

    response = client.get("/admin/failing/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_the_docs_pages_are_html(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
