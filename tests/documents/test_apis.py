"""Document API without a worker: what is accepted, refused, stored and shown."""

import uuid

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from documents.models import Document, DocumentChunk, DocumentStatus
from tasks_app.models import TaskRecord
from tests.documents import samples

pytestmark = pytest.mark.django_db

DOCUMENTS = "/api/v1/documents/"


def upload(api, name: str, content: bytes):
    return api.post(DOCUMENTS, {"file": SimpleUploadedFile(name, content)}, format="multipart")


@pytest.fixture
def pdf_bytes(tmp_path) -> bytes:
    path = tmp_path / "two.pdf"
    samples.make_pdf(path, ["First page text.", "Second page text."])
    return path.read_bytes()


def make_completed_document(owner, *texts: str) -> Document:
    document = Document.objects.create(
        owner=owner,
        filename="done.txt",
        kind="text",
        status=DocumentStatus.COMPLETED,
        chunks_generation=uuid.uuid4(),
    )
    position = 0
    for index, text in enumerate(texts):
        DocumentChunk.objects.create(
            document=document,
            generation=document.chunks_generation,
            index=index,
            text=text,
            start=position,
            end=position + len(text),
            page_start=1,
            page_end=1,
        )
        position += len(text)
    return document


# --- upload -------------------------------------------------------------------------------


def test_upload_answers_202_queued_with_task_and_stores_the_file_by_id(api, pdf_bytes):
    response = upload(api, "../../etc/My Report (final).pdf", pdf_bytes)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["kind"] == "pdf"
    assert body["size"] == len(pdf_bytes)
    assert body["filename"] == "My_Report_final.pdf"
    assert body["task"]["status"] == "queued"
    assert body["task"]["poll"].endswith(f"/api/v1/tasks/{body['task']['id']}/")
    assert response["Location"] == body["links"]["detail"]
    document = Document.objects.get(pk=body["id"])
    assert document.source_file.name == f"documents/{document.pk}/source.pdf"
    assert default_storage.open(document.source_file.name).read() == pdf_bytes
    record = TaskRecord.objects.get(pk=body["task"]["id"])
    assert (record.task_type, record.input) == ("documents.process", {"document_id": body["id"]})


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"Plain words in a file.\n"),
        ("readme.md", b"# Title\n\nSome *markdown*.\n"),
    ],
)
def test_upload_of_text_and_markdown_is_accepted(api, name, content):
    response = upload(api, name, content)

    assert response.status_code == 202
    assert response.json()["kind"] == ("markdown" if name.endswith(".md") else "text")


def test_upload_over_the_limit_is_413_and_stores_nothing(api, settings):
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 1000

    response = upload(api, "big.txt", b"word " * 400)

    assert response.status_code == 413
    assert "larger than the upload limit" in response.json()["detail"]
    assert not Document.objects.exists()
    assert not TaskRecord.objects.exists()


def test_upload_declaring_a_body_far_over_the_limit_is_413_before_reading_it(api, settings):
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 1000

    response = upload(api, "big.txt", b"word " * 40_000)  # 200 kB: past limit + overhead

    assert response.status_code == 413
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    "name, content",
    [
        ("program.exe", b"MZ\x90\x00\x03\x00\x00\x00"),
        ("picture.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("fake.pdf", b"this is not a pdf at all"),
        ("fake.docx", b"not a zip file"),
        ("noextension", b"hello"),
    ],
)
def test_unsupported_or_mismatched_content_is_415(api, name, content):
    response = upload(api, name, content)

    assert response.status_code == 415, response.content
    assert response.json()["detail"]
    assert not Document.objects.exists()


def test_a_pdf_named_txt_is_415(api, pdf_bytes):
    response = upload(api, "report.txt", pdf_bytes)

    assert response.status_code == 415


def test_empty_file_is_400(api):
    response = upload(api, "empty.txt", b"")

    assert response.status_code == 400
    assert response.json()["detail"] == "The file is empty."
    assert not Document.objects.exists()


def test_post_without_file_or_url_is_400(api):
    assert api.post(DOCUMENTS, {}, format="json").status_code == 400
    assert api.post(DOCUMENTS, {"other": "x"}, format="multipart").status_code == 400


# --- URL ingestion ------------------------------------------------------------------------


def test_url_is_accepted_and_left_to_the_worker(api):
    response = api.post(DOCUMENTS, {"url": "https://example.com/guide.html"}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["source_url"], body["kind"]) == (
        "queued",
        "https://example.com/guide.html",
        "",
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file.txt",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://127.0.0.1:8000/admin/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://user:pass@example.com/",
        "not a url",
    ],
)
def test_refused_urls_are_400_on_the_url_field(api, url):
    response = api.post(DOCUMENTS, {"url": url}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["url"]
    assert not Document.objects.exists()


# --- reading ------------------------------------------------------------------------------


def test_another_users_document_is_404_everywhere(api, other_api, user):
    document = make_completed_document(user, "secret words")
    base = f"{DOCUMENTS}{document.pk}"

    for path in ("/", "/text", "/chunks"):
        assert other_api.get(base + path).status_code == 404, path
    assert other_api.post(f"{base}/reprocess").status_code == 404
    assert other_api.delete(f"{base}/").status_code == 404
    assert other_api.get(DOCUMENTS).json()["results"] == []
    assert Document.objects.filter(pk=document.pk).exists()


@pytest.mark.parametrize("document_id", [str(uuid.uuid4()), "nope"])
def test_unknown_or_malformed_document_id_is_404(api, document_id):
    response = api.get(f"{DOCUMENTS}{document_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No document with this id."}


def test_list_filters_by_status_and_kind(api, user):
    done = make_completed_document(user, "x")
    Document.objects.create(owner=user, filename="a.pdf", kind="pdf")

    response = api.get(DOCUMENTS, {"status": "completed", "kind": "text"})

    assert [row["id"] for row in response.json()["results"]] == [str(done.pk)]
    assert api.get(DOCUMENTS, {"kind": "exe"}).status_code == 400


def test_text_of_an_unfinished_document_is_409(api, user):
    document = Document.objects.create(owner=user, filename="a.pdf", kind="pdf")

    response = api.get(f"{DOCUMENTS}{document.pk}/text")

    assert response.status_code == 409
    assert response.json()["status"] == "queued"


def test_chunks_are_paginated_in_order(api, user):
    document = make_completed_document(user, *[f"chunk {n}" for n in range(5)])

    first = api.get(f"{DOCUMENTS}{document.pk}/chunks", {"page_size": 3}).json()
    second = api.get(first["next"]).json()

    assert [c["index"] for c in first["results"] + second["results"]] == [0, 1, 2, 3, 4]
    assert first["results"][1] == {
        "index": 1,
        "text": "chunk 1",
        "start": 7,
        "end": 14,
        "page_start": 1,
        "page_end": 1,
    }


# --- reprocess and delete -----------------------------------------------------------------


def test_reprocess_of_a_document_still_queued_is_409(api, user):
    document = Document.objects.create(owner=user, filename="a.pdf", kind="pdf")

    response = api.post(f"{DOCUMENTS}{document.pk}/reprocess")

    assert response.status_code == 409
    assert response.json()["status"] == "queued"


def test_reprocess_of_a_completed_document_queues_a_new_task_and_keeps_its_chunks(api, user):
    document = make_completed_document(user, "kept until replaced")

    response = api.post(f"{DOCUMENTS}{document.pk}/reprocess/")

    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.json()["task"]["status"] == "queued"
    assert document.chunks.count() == 1


def test_delete_cancels_processing_and_removes_file_and_chunks(
    api, user, pdf_bytes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        body = upload(api, "a.pdf", pdf_bytes).json()
    document = Document.objects.get(pk=body["id"])
    DocumentChunk.objects.create(
        document=document,
        generation=document.task_id,
        index=0,
        text="x",
        start=0,
        end=1,
        page_start=1,
        page_end=1,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{DOCUMENTS}{document.pk}/")

    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not DocumentChunk.objects.exists()
    assert not default_storage.exists(document.source_file.name)
    assert TaskRecord.objects.get(pk=body["task"]["id"]).status == "cancelled"


def test_cancelling_the_processing_task_cancels_the_document(api, user, pdf_bytes):
    body = upload(api, "a.pdf", pdf_bytes).json()

    response = api.post(f"/api/v1/tasks/{body['task']['id']}/cancel/")

    assert response.status_code == 200
    assert Document.objects.get(pk=body["id"]).status == "cancelled"


def test_document_task_type_cannot_be_submitted_directly(api):
    response = api.post(
        "/api/v1/tasks/",
        {"task_type": "documents.process", "input": {"document_id": str(uuid.uuid4())}},
        format="json",
    )

    assert response.status_code == 400
    assert "Unknown task type" in response.json()["task_type"][0]
    names = [row["name"] for row in api.get("/api/v1/task-types/").json()]
    assert "documents.process" not in names


# --- search -------------------------------------------------------------------------------


def test_search_finds_own_chunks_with_a_highlighted_snippet(api, user, other_user):
    mine = make_completed_document(user, "The quarterly report mentions <b>zebras</b> twice.")
    make_completed_document(other_user, "Another user's zebras must stay private.")

    response = api.get(f"{DOCUMENTS}search", {"q": "zebras"})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [row["document"]["id"] for row in results] == [str(mine.pk)]
    assert "<mark>zebras</mark>" in results[0]["snippet"]
    # The document's own markup never reaches the page as markup (escaped, or dropped by
    # PostgreSQL's headline parser).
    assert "<b>" not in results[0]["snippet"]
    assert results[0]["chunk_index"] == 0


def test_chunks_a_processing_run_left_behind_are_neither_listed_nor_found(api, user):
    document = make_completed_document(user, "The current text mentions zebras.")
    # What a run that stored chunks and then died leaves until its task's end deletes them.
    DocumentChunk.objects.create(
        document=document,
        generation=uuid.uuid4(),
        index=0,
        text="A dead run's zebras.",
        start=0,
        end=20,
        page_start=1,
        page_end=1,
    )

    found = api.get(f"{DOCUMENTS}search", {"q": "zebras"}).json()["results"]
    listed = api.get(f"{DOCUMENTS}{document.pk}/chunks/").json()["results"]

    assert [row["chunk_index"] for row in found] == [0]
    assert "current" in found[0]["snippet"]
    assert [row["text"] for row in listed] == ["The current text mentions zebras."]


def test_search_requires_a_query(api):
    response = api.get(f"{DOCUMENTS}search/")

    assert response.status_code == 400
    assert "q" in response.json()
