"""Production settings from the environment: `check --deploy` can be made clean, and the
settings refuse to start when they would be unsafe."""

import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

HTTPS_VARIABLES = {
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}
# Set explicitly, so that a developer's .env cannot turn them on.
HTTPS_OFF = {
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_HSTS_SECONDS": "0",
    "DJANGO_SECURE_COOKIES": "false",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "",
}


def run_with_production_settings(tmp_path, args: list[str], **variables: str):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_VAR_DIR": str(tmp_path),
        **variables,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(tmp_path, **variables: str):
    return run_with_production_settings(
        tmp_path,
        ["manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        **variables,
    )


@pytest.mark.integration  # a `manage.py` process
def test_check_deploy_has_no_security_warning_once_https_is_configured(tmp_path):
    result = check_deploy(tmp_path, **HTTPS_VARIABLES)

    assert result.returncode == 0, result.stderr
    assert "security.W" not in result.stdout + result.stderr


@pytest.mark.integration  # a `manage.py` process
def test_check_deploy_names_each_https_setting_left_off(tmp_path):
    result = check_deploy(tmp_path, **HTTPS_OFF)

    assert result.returncode == 1
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"(security.{warning})" in result.stderr


@pytest.mark.integration  # a `manage.py` process
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
        (
            {"DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
            "DJANGO_SECURE_PROXY_SSL_HEADER must be a header and a value",
        ),
    ],
)
def test_production_settings_refuse_to_start(tmp_path, variables, message):
    result = run_with_production_settings(tmp_path, ["-c", "import config.settings"], **variables)

    assert result.returncode == 1
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


# --- what the settings do, in this process ---------------------------------------------------


@pytest.mark.django_db
def test_https_redirect_spares_the_health_probes_and_trusts_the_proxy_header(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = client.get("/api/v1/tasks/")
    probe = client.get("/api/v1/health/live")
    via_proxy = client.get("/api/v1/tasks/", HTTP_X_FORWARDED_PROTO="https")

    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/api/v1/tasks/")
    assert probe.status_code == 200
    assert via_proxy.status_code == 401  # the API itself answered: no credentials
