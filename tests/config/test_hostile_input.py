"""What a hostile client can send to the API: every answer is a 4xx with a JSON body."""

import base64
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.parsers import BoundedJSONParser, RequestBodyTooLarge
from documents.models import Document
from tasks_app.models import TaskRecord
from tests.conftest import client_for
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks/"
MEGABYTE = 1024 * 1024


def post_json(client, path: str, body: str, **headers):
    return client.post(path, data=body, content_type="application/json", **headers)


def submission(input_json: str) -> str:
    return '{"task_type": "diagnostics.sleep", "input": ' + input_json + "}"


# --- size -----------------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_413_before_it_is_parsed(api):
    body = submission('{"seconds": 1, "padding": "' + "a" * MEGABYTE + '"}')

    response = post_json(api, TASKS, body)

    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body is larger than the limit of 1048576 bytes."
    }
    assert not TaskRecord.objects.exists()


def test_a_json_body_of_exactly_the_limit_is_accepted(api, settings):
    body = submission('{"seconds": 1}')
    body += " " * (settings.API_MAX_JSON_BYTES - len(body))

    response = post_json(api, TASKS, body)

    assert response.status_code == 202


def test_the_limit_is_a_setting(api, settings):
    settings.API_MAX_JSON_BYTES = 100

    response = post_json(api, TASKS, submission('{"seconds": 1, "pad": "' + "a" * 100 + '"}'))

    assert response.status_code == 413


def test_every_json_endpoint_has_the_limit(staff_user):
    body = json.dumps({"action": "discard", "ids": ["x" * MEGABYTE]})

    response = post_json(client_for(staff_user), "/api/v1/dead-letters/bulk/", body)

    assert response.status_code == 413


def test_a_body_without_a_length_is_counted_while_it_is_read():
    # A chunked body has no Content-Length: what arrives is what counts.
    stream = io.BytesIO(b"[" + b"1," * MEGABYTE + b"1]")

    with pytest.raises(RequestBodyTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {})


def test_a_document_upload_larger_than_the_json_limit_still_works(api, settings):
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 3 * MEGABYTE
    text = ("A line of plain text.\n" * (2 * MEGABYTE // 22)).encode()

    response = api.post(
        "/api/v1/documents/",
        {"file": SimpleUploadedFile("big.txt", text)},
        format="multipart",
    )

    assert response.status_code == 202
    assert Document.objects.get().size == len(text)


def test_form_bodies_are_not_parsed_at_all(staff_user):
    response = client_for(staff_user).post(
        "/api/v1/dead-letters/bulk/",
        data="action=discard&ids=" + "a" * 3 * MEGABYTE,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 415
    assert "detail" in response.json()


# --- JSON documents no database or renderer can take ------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 1000 + "]" * 1000, "nested deeper than 64 levels"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        (submission('{"seconds": 1, "x": ' + "[" * 64 + "]" * 64 + "}"), "nested deeper"),
        (submission('{"seconds": NaN}'), "NaN is not a number JSON allows"),
        (submission('{"seconds": Infinity}'), "Infinity is not a number JSON allows"),
        (submission('{"seconds": -Infinity}'), "-Infinity is not a number JSON allows"),
        (submission('{"seconds": 1e999}'), "number out of range: 1e999"),
        (submission('{"seconds": 1' + "0" * 5000 + "}"), "Exceeds the limit"),
        (submission('{"seconds": 1, "note": "\\ud800"}'), "strings cannot contain U+D800"),
        (submission('{"seconds": 1, "note": "a\\u0000b"}'), "strings cannot contain U+0000"),
        (submission('{"seconds": 1, "a\\u0000": 1}'), "strings cannot contain U+0000"),
        ('{"task_type": "diagnostics.\\udfff"}', "strings cannot contain U+DFFF"),
        (b'{"task_type": "\xff\xfe"}', "can't decode byte 0xff"),
    ],
)
def test_a_json_body_that_cannot_be_stored_is_400_with_the_reason(api, body, reason):
    response = post_json(api, TASKS, body)

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("JSON parse error - ") and reason in detail
    assert not TaskRecord.objects.exists()


def test_json_nested_to_the_depth_limit_is_accepted(staff_user):
    body = '{"action": "discard", "ids": ' + "[" * 63 + "]" * 63 + "}"  # 64 levels

    response = post_json(client_for(staff_user), "/api/v1/dead-letters/bulk/", body)

    # Parsed, then refused by the serializer for what it says, not by the parser.
    assert response.status_code == 400
    assert "ids" in response.json()


def test_a_document_url_with_a_nul_character_is_400(api):
    response = post_json(api, "/api/v1/documents/", '{"url": "http://example.com/\\u0000"}')

    assert response.status_code == 400
    assert not Document.objects.exists()


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf"])
def test_a_number_given_as_the_string_nan_or_infinity_is_400(api, value):
    response = post_json(api, TASKS, submission(json.dumps({"seconds": value})))

    assert response.status_code == 400
    assert "seconds" in response.json()["input"]
    assert not TaskRecord.objects.exists()


@pytest.mark.parametrize("key", ["a\x00b", "line\nbreak", "tab\tkey", "\x7f"])
def test_an_idempotency_key_with_control_characters_is_400(api, key):
    response = post_json(api, TASKS, submission('{"seconds": 1}'), HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not TaskRecord.objects.exists()


# --- query strings and paths ------------------------------------------------------------------


@pytest.mark.parametrize("window", ["999999999w", "999999999d", "999999999"])
def test_a_metrics_window_too_large_for_a_timedelta_is_400(api, window):
    response = api.get("/api/v1/tasks/metrics", {"window": window})

    assert response.status_code == 400
    assert response.json() == {
        "window": ["Give a window of at least 1 second and at most 366 days."]
    }


def cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (TASKS, "p=garbage"),
        (TASKS, "o=5&r=1&p=2025-13-45"),
        ("/api/v1/documents/", "p=not a time"),
        ("/api/v1/dead-letters/", "p=x"),
    ],
)
def test_a_cursor_with_a_forged_position_is_an_invalid_cursor(staff_user, path, query):
    client = client_for(staff_user)
    TaskRecordFactory(owner=staff_user)

    response = client.get(path, {"cursor": cursor(query)})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("position", ["abc", "99999999999999999999", "-1"])
def test_a_chunk_cursor_with_a_forged_position_is_an_invalid_cursor(api, user, position):
    document = Document.objects.create(owner=user, filename="a.txt", kind="text", size=1)

    response = api.get(
        f"/api/v1/documents/{document.pk}/chunks", {"cursor": cursor(f"p={position}")}
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_valid_cursor_still_pages(api, user):
    for _ in range(3):
        TaskRecordFactory(owner=user)

    first = api.get(TASKS, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        {"page_size": "-5"},
        {"page_size": "9" * 5000},
        {"task_type": "x" * 100_000},
        {"status": "\x00"},
        {"cursor": "%%%"},
        {"cursor": "\u00e9"},
    ],
)
def test_odd_list_parameters_are_answered_in_json(api, query):
    response = api.get(TASKS, query)

    assert response.status_code in (200, 400, 404)
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("page_size", ["abc", "0", "-5", "null", "9" * 5000])
def test_a_page_size_that_is_not_a_whole_number_from_1_up_is_400(api, page_size):
    response = api.get(TASKS, {"page_size": page_size})

    assert response.status_code == 400
    assert response.json() == {"page_size": ["Give a whole number from 1 up."]}


def test_a_page_size_past_the_maximum_gives_the_maximum(api, user):
    TaskRecordFactory(owner=user)

    assert api.get(TASKS, {"page_size": "100000"}).status_code == 200


@pytest.mark.parametrize(
    ("input_json", "field"),
    [
        ('{"seconds": false}', "seconds"),
        ('{"seconds": "1.5"}', "seconds"),
        ('{"seconds": 1, "steps": "3"}', "steps"),
        ('{"seconds": 1, "steps": true}', "steps"),
    ],
)
def test_task_input_of_the_wrong_json_type_is_400(api, input_json, field):
    response = post_json(api, TASKS, submission(input_json))

    assert response.status_code == 400
    assert field in response.json()["input"]
    assert not TaskRecord.objects.exists()


def test_a_priority_given_as_a_string_is_400(api):
    body = '{"task_type": "diagnostics.sleep", "input": {"seconds": 1}, "priority": "5"}'

    response = post_json(api, TASKS, body)

    assert response.status_code == 400
    assert "priority" in response.json()


@pytest.mark.parametrize("bad_id", ["false", "0", "12345"])
def test_a_dead_letter_id_that_is_not_a_uuid_string_is_400(staff_user, bad_id):
    body = '{"action": "discard", "ids": [' + bad_id + "]}"

    response = post_json(client_for(staff_user), "/api/v1/dead-letters/bulk/", body)

    assert response.status_code == 400
    assert "ids" in response.json()
