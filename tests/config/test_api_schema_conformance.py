"""The API against its own live schema (schemathesis): every operation, with data that fits
the schema and data that breaks it, as a user (token) and as staff (API key), under all of
schemathesis' checks: no 500s, only documented status codes, bodies and headers as the
schema says, invalid input refused, credentials required where the schema says so.

Submissions put rows in the test database; no worker runs them, and the test's
transaction is never committed, so nothing reaches the broker either.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application
from tasks_app.models import TaskBatch, TaskRecord
from tasks_app.services import api_key_create
from tests.conftest import client_for
from tests.factories import UserFactory

# Some 2,000 generated requests a run, the slowest part of the suite: run with the integration
# tests (CI runs everything), not in the fast `-m "not integration"` part.
pytestmark = pytest.mark.integration

# Enough to find what the schema and the views disagree on, within about a minute a role.
EXAMPLES_PER_OPERATION = 20


@pytest.fixture
def app_in_test_transaction(db):
    # As Django's test client does: a request must not close the test's own connection
    # (and with it the transaction the test runs in) when it finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def live_schema(app, *, scheme: str, credential: str):
    """The schema the app serves, with the credential for one of its security schemes."""
    config = SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {scheme: {"api_key": credential}}},
            # The API refuses U+0000 in every string (docs/security-and-limits.md); the schema
            # does not repeat that on each string parameter and field.
            "generation": {"allow-x00": False},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/schema/", app, config=config)


def call_and_validate(case) -> None:
    excluded = []
    if case.operation.path == "/api/v1/health/ready/":
        # 503 is readiness' documented answer while no worker runs, as in these tests.
        excluded.append(not_a_server_error)
    if case.operation.label == "POST /api/v1/documents/":
        # A document's format is judged from its name and bytes, which a schema cannot
        # state: a file it fits may still be refused (400 empty, 415 a format not read).
        excluded.append(positive_data_acceptance)
    if case.operation.label in (
        "POST /api/v1/workflows/",
        "POST /api/v1/webhooks/endpoints/",
        "PATCH /api/v1/webhooks/endpoints/{endpoint_id}/",
    ):
        # A workflow's steps are judged together (task types, names, references to earlier
        # steps), and a webhook's address by where its host points (public addresses only):
        # a request the schema fits may still be refused, with a 400 saying why.
        excluded.append(positive_data_acceptance)
    submits = ("POST /api/v1/tasks/", "POST /api/v1/tasks/batch/")
    if case.operation.label in submits and "Idempotency-Key" in (case.headers or {}):
        # A key ties two requests together, and the cases are independent: one that reuses an
        # earlier case's key for another submission is rightly refused (422), which the
        # fuzzer cannot foresee. Each case starts with no earlier submission under its key.
        key = str(case.headers["Idempotency-Key"]).strip()
        TaskRecord.objects.filter(idempotency_key=key).update(idempotency_key=None)
        TaskBatch.objects.filter(idempotency_key=key).update(idempotency_key=None)
    case.call_and_validate(excluded_checks=excluded)


@pytest.fixture
def schema_as_user(app_in_test_transaction):
    token = client_for(UserFactory(username="schema-user"))._credentials["HTTP_AUTHORIZATION"]
    return live_schema(app_in_test_transaction, scheme="tokenAuth", credential=token)


@pytest.fixture
def schema_as_staff(app_in_test_transaction):
    staff = UserFactory(username="schema-staff", is_staff=True)
    _, raw_key = api_key_create(owner=staff, name="schemathesis")
    return live_schema(app_in_test_transaction, scheme="apiKeyAuth", credential=raw_key)


fuzz_settings = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    # The fixtures hold the users and the schema: one set for all examples is what we want.
    suppress_health_check=list(HealthCheck),
)


@schemathesis.pytest.from_fixture("schema_as_user").parametrize()
@fuzz_settings
def test_the_api_keeps_to_its_schema_for_a_user(case):
    call_and_validate(case)


@schemathesis.pytest.from_fixture("schema_as_staff").parametrize()
@fuzz_settings
def test_the_api_keeps_to_its_schema_for_staff(case):
    call_and_validate(case)
