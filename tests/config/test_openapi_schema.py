"""The OpenAPI schema at /api/schema/ describes the API a client can be generated from."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api) -> dict:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def ref_name(content: dict) -> str:
    return content["schema"]["$ref"].rsplit("/", 1)[-1]


def test_schema_generation_has_no_warnings(tmp_path):
    # The same command CI runs (.ci/run); any warning makes it fail.
    call_command("spectacular", validate=True, fail_on_warn=True, file=str(tmp_path / "s.yaml"))


def test_task_submission_has_one_shape_per_task_type_with_its_own_input(schema):
    body = schema["paths"]["/api/v1/tasks/"]["post"]["requestBody"]
    submission = schema["components"]["schemas"][ref_name(body["content"]["application/json"])]

    assert body["required"] is True
    assert submission["discriminator"]["propertyName"] == "task_type"
    assert "diagnostics.sleep" in submission["discriminator"]["mapping"]
    sleep = schema["components"]["schemas"]["DiagnosticsSleepSubmissionRequest"]
    assert set(sleep["required"]) == {"task_type", "input"}
    sleep_input = sleep["properties"]["input"]["$ref"].rsplit("/", 1)[-1]
    assert "seconds" in schema["components"]["schemas"][sleep_input]["properties"]
    assert "ids" not in str(submission)  # not the dead-letter bulk body


def test_task_types_answer_their_own_shape(schema):
    ok = schema["paths"]["/api/v1/task-types/"]["get"]["responses"]["200"]
    items = ok["content"]["application/json"]["schema"]["items"]["$ref"].rsplit("/", 1)[-1]

    assert items == "TaskType"
    assert {"name", "queue", "input_schema"} <= set(
        schema["components"]["schemas"]["TaskType"]["properties"]
    )


@pytest.mark.parametrize(
    ("path", "filters"),
    [
        ("/api/v1/tasks/", {"status", "task_type"}),
        ("/api/v1/dead-letters/", {"resolution", "task_type", "owner"}),
        ("/api/v1/documents/", {"status", "kind"}),
        ("/api/v1/documents/{document_id}/chunks/", set()),
    ],
)
def test_lists_document_their_filters_and_cursor_pages(schema, path, filters):
    operation = schema["paths"][path]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    assert {"cursor", "page_size"} | filters <= names
    assert page.rsplit("/", 1)[-1].startswith("Paginated")


def test_api_keys_and_tokens_are_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]

    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["tokenAuth"]["name"] == "Authorization"
    assert {"apiKeyAuth": []} in schema["paths"]["/api/v1/tasks/"]["get"]["security"]


def test_error_answers_are_documented_in_the_error_format(schema):
    responses = schema["paths"]["/api/v1/tasks/"]["post"]["responses"]

    assert {"202", "400", "401", "403", "413", "415", "422", "429"} <= set(responses)
    assert ref_name(responses["413"]["content"]["application/json"]) == "Error"
    assert "404" in schema["paths"]["/api/v1/tasks/{task_id}/"]["get"]["responses"]
    assert "401" not in schema["paths"]["/api/v1/health/live/"]["get"]["responses"]
