"""Django's error page under DEBUG shows settings, request headers and local variables:
none of the service's secrets may be among them."""

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

BROKER_PASSWORD = "broker-pass-4b1d"
RESULTS_PASSWORD = "results-pass-9c2e"
CACHE_PASSWORD = "cache-pass-7f3a"
DATABASE_PASSWORD = "db-pass-5e8c"
WEBHOOK_SECRET = "T000/B000/webhook-secret-2d6b"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"

SECRETS = [BROKER_PASSWORD, RESULTS_PASSWORD, CACHE_PASSWORD, DATABASE_PASSWORD, WEBHOOK_SECRET]


@pytest.fixture
def secret_settings(settings):
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = f"redis://:{BROKER_PASSWORD}@redis.internal:6379/0"
    settings.CELERY_RESULT_BACKEND = f"redis://worker:{RESULTS_PASSWORD}@redis.internal:6379/1"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": [f"redis://:{CACHE_PASSWORD}@cache-1:6379/2"],
        }
    }
    settings.OPS_ALERT_WEBHOOK_URL = f"https://hooks.example.com/services/{WEBHOOK_SECRET}"
    return settings


def error_page(request) -> str:
    def connect(url):
        raise ConnectionError("broker unreachable")

    try:
        connect(f"postgres://jobs:{DATABASE_PASSWORD}@db.internal:5432/jobs")
    except ConnectionError:
        response = technical_500_response(request, *sys.exc_info())
    assert response.status_code == 500
    return response.content.decode()


def test_the_debug_error_page_shows_no_password_webhook_or_token(secret_settings):
    request = RequestFactory().get(
        "/api/v1/tasks/",
        HTTP_AUTHORIZATION=f"Token {TOKEN}",
        # The development server copies the process environment into request.META.
        DATABASE_URL=f"postgres://jobs:{DATABASE_PASSWORD}@db.internal:5432/jobs",
        OPS_ALERT_WEBHOOK_URL=f"https://hooks.example.com/services/{WEBHOOK_SECRET}",
    )

    page = error_page(request)

    assert [secret for secret in [*SECRETS, TOKEN] if secret in page] == []
    # What is not secret stays, so the page still helps.
    assert "redis.internal:6379/0" in page
    assert "cache-1:6379/2" in page
    assert "broker unreachable" in page


def test_a_url_without_a_password_is_shown_unchanged(secret_settings):
    secret_settings.CELERY_BROKER_URL = "redis://redis.internal:6379/0"

    page = error_page(RequestFactory().get("/"))

    assert "redis://redis.internal:6379/0" in page
