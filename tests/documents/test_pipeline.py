"""The documents.process body, run in the test's thread: what a user sees after each end.

Documents and tasks come from the real services and the task is claimed as a worker
claims it (tests/documents/steps.py); the file is parsed in the real child process.
"""

import uuid

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import default_storage

from documents import pipeline
from documents.models import Document, DocumentChunk, DocumentStatus
from documents.pipeline import document_process
from documents.processing import DocumentError, TransientFetchError
from documents.selectors import document_chunks
from documents.services import (
    document_delete,
    document_follow_task,
    document_ingest_url,
    document_reprocess,
)
from tasks_app.errors import PermanentTaskError
from tasks_app.execution import TaskCancelled
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.services import task_cancel
from tasks_app.transitions import task_mark_failed, task_mark_retrying, task_mark_timed_out
from tests.documents import samples
from tests.documents.steps import claim, claim_and_act_at_page, scratch_folders, upload
from tests.integration.web_server import LocalWebServer

pytestmark = pytest.mark.django_db

THREE_PAGES = ["First page text.", "Second page text.", "Third one."]


@pytest.fixture
def pdf_bytes(tmp_path) -> bytes:
    return samples.make_pdf(tmp_path / "three.pdf", THREE_PAGES).read_bytes()


def text_of(document) -> str:
    with default_storage.open(document.text_file.name, "rb") as text:
        return text.read().decode()


def stored_files(document) -> list[str]:
    folder = f"documents/{document.pk}"
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []


def test_processed_pdf_is_completed_with_its_text_counts_chunks_and_progress(user, pdf_bytes):
    document = upload(user, "three.pdf", pdf_bytes)

    result = document_process(document_id=str(document.pk), context=claim(document))

    document.refresh_from_db()
    assert result == {"document_id": str(document.pk), "pages": 3, "words": 8, "chunks": 1}
    assert document.status == DocumentStatus.COMPLETED
    assert (document.page_count, document.word_count, document.chunk_count) == (3, 8, 1)
    assert document.processed_at is not None and document.error_message == ""
    assert text_of(document) == "First page text.\n\nSecond page text.\n\nThird one."
    chunk = DocumentChunk.objects.get(document=document)
    assert (chunk.index, chunk.text, chunk.page_start, chunk.page_end) == (
        0,
        text_of(document),
        1,
        3,
    )
    assert document.task.progress == {
        "current": 3,
        "total": 3,
        "percent": 100.0,
        "message": "storing text and chunks",
    }
    assert scratch_folders(document.pk) == []


def test_processed_web_page_takes_its_kind_name_and_size_from_the_download(user):
    page = b"<html><head><title>T</title></head><body><p>Hello, web.</p></body></html>"
    with LocalWebServer() as server:
        server.pages["/docs/hello.html"] = ("text/html; charset=utf-8", page)
        document = document_ingest_url(owner=user, url=server.url("/docs/hello.html"))

        document_process(document_id=str(document.pk), context=claim(document))

    document.refresh_from_db()
    assert document.status == DocumentStatus.COMPLETED
    assert (document.kind, document.filename, document.size) == ("html", "hello.html", len(page))
    assert default_storage.open(document.source_file.name).read() == page
    assert "Hello, web." in text_of(document)


def test_web_page_that_fails_once_is_processed_by_the_retry_of_the_same_task(user):
    with LocalWebServer() as server:
        server.pages["/page.html"] = ("text/html", b"<p>Second time lucky.</p>")
        server.unavailable["/page.html"] = 1
        document = document_ingest_url(owner=user, url=server.url("/page.html"))
        first = claim(document)
        with pytest.raises(TransientFetchError):
            document_process(document_id=str(document.pk), context=first)
        assert task_mark_retrying(
            task_id=first.task_id,
            error_type="TransientFetchError",
            error_message="503",
            countdown=0,
            attempt=first.attempt,
        )
        document.refresh_from_db()
        assert document.status == DocumentStatus.PROCESSING  # a retry is not the task's end

        document_process(document_id=str(document.pk), context=claim(document))

    document.refresh_from_db()
    assert document.status == DocumentStatus.COMPLETED
    assert text_of(document) == "Second time lucky."


def test_damaged_pdf_fails_the_task_and_the_document_says_why(user, tmp_path):
    damaged = samples.make_truncated_pdf(tmp_path / "damaged.pdf").read_bytes()
    document = upload(user, "damaged.pdf", damaged)
    context = claim(document)

    with pytest.raises(DocumentError, match="The PDF is damaged") as raised:
        document_process(document_id=str(document.pk), context=context)
    # What the worker does with an error the body raised.
    task_mark_failed(
        task_id=context.task_id,
        error_type="DocumentError",
        error_message=str(raised.value),
        attempt=context.attempt,
    )

    document.refresh_from_db()
    assert document.status == DocumentStatus.FAILED
    assert document.error_message == str(raised.value)
    assert (document.text_file.name, document.chunk_count) == ("", None)
    assert not DocumentChunk.objects.filter(document=document).exists()
    assert stored_files(document) == [document.source_file.name.rsplit("/", 1)[-1]]
    assert scratch_folders(document.pk) == []


def test_document_without_words_fails_with_a_message_about_scanned_pages(user):
    document = upload(user, "blank.txt", b" \n\t\n ")

    with pytest.raises(DocumentError, match="No text could be found"):
        document_process(document_id=str(document.pk), context=claim(document))


def test_cancel_while_extracting_stops_at_the_next_progress_report(user, pdf_bytes):
    document = upload(user, "three.pdf", pdf_bytes)
    context = claim_and_act_at_page(
        document, 2, act=lambda: task_cancel(record=TaskRecord.objects.get(pk=document.task_id))
    )

    with pytest.raises(TaskCancelled):
        document_process(document_id=str(document.pk), context=context)

    document.refresh_from_db()
    assert context.acted
    assert document.status == DocumentStatus.CANCELLED
    assert document.task.status == TaskStatus.CANCELLED
    assert (document.text_file.name, document.page_count) == ("", None)
    assert not DocumentChunk.objects.filter(document=document).exists()
    assert stored_files(document) == [document.source_file.name.rsplit("/", 1)[-1]]
    assert scratch_folders(document.pk) == []


def test_delete_while_extracting_removes_everything_and_stops_the_body(
    user, pdf_bytes, django_capture_on_commit_callbacks
):
    document = upload(user, "three.pdf", pdf_bytes)
    task_id = document.task_id
    context = claim_and_act_at_page(document, 1, act=lambda: document_delete(document=document))

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TaskCancelled):
        document_process(document_id=str(document.pk), context=context)

    assert context.acted
    assert not type(document).objects.filter(pk=document.pk).exists()
    assert not DocumentChunk.objects.filter(document_id=document.pk).exists()
    assert stored_files(document) == []
    assert TaskRecord.objects.get(pk=task_id).status == TaskStatus.CANCELLED
    assert scratch_folders(document.pk) == []


def test_reprocess_replaces_text_and_chunks_and_removes_the_old_text(user, settings):
    words = " ".join(f"word{n}" for n in range(60))
    document = upload(user, "words.txt", words.encode())
    document_process(document_id=str(document.pk), context=claim(document))
    document.refresh_from_db()
    first_text_name, first_chunks = document.text_file.name, document.chunk_count
    settings.DOCUMENTS_CHUNK_SIZE, settings.DOCUMENTS_CHUNK_OVERLAP = 100, 0

    document = document_reprocess(document=document)
    assert document.status == DocumentStatus.QUEUED
    assert document.chunks.count() == first_chunks == 1  # kept until replaced
    assert text_of(document) == words
    document_process(document_id=str(document.pk), context=claim(document))

    document.refresh_from_db()
    assert document.status == DocumentStatus.COMPLETED
    assert document.chunk_count == document.chunks.count() > first_chunks
    assert [chunk.index for chunk in document.chunks.all()] == list(range(document.chunk_count))
    assert text_of(document) == words
    assert document.text_file.name != first_text_name
    assert not default_storage.exists(first_text_name)


def test_task_the_document_was_reprocessed_away_from_can_no_longer_move_it(user, pdf_bytes):
    document = upload(user, "three.pdf", pdf_bytes)
    stale = claim(document)
    stale_record = task_cancel(record=TaskRecord.objects.get(pk=stale.task_id))
    document.refresh_from_db()
    assert document.status == DocumentStatus.CANCELLED
    document = document_reprocess(document=document)

    with pytest.raises(PermanentTaskError, match="processed by a newer task"):
        document_process(document_id=str(document.pk), context=stale)
    document_follow_task(stale_record)

    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert str(document.task_id) != stale.task_id
    assert document.task.status == TaskStatus.QUEUED


# --- chunks stored while extracting -------------------------------------------------------

FOUR_PAGES = [" ".join(f"page{page}word{n}" for n in range(30)) for page in range(1, 5)]


@pytest.fixture
def processed_once(user, tmp_path, settings):
    """A four-page document processed into one chunk; later runs cut it into small ones."""
    pdf = samples.make_pdf(tmp_path / "four.pdf", FOUR_PAGES).read_bytes()
    document = upload(user, "four.pdf", pdf)
    settings.DOCUMENTS_CHUNK_SIZE = 10_000
    document_process(document_id=str(document.pk), context=claim(document))
    document.refresh_from_db()
    assert (document.status, document.chunk_count) == (DocumentStatus.COMPLETED, 1)
    settings.DOCUMENTS_CHUNK_SIZE, settings.DOCUMENTS_CHUNK_OVERLAP = 100, 0
    return document


def listed_texts(document) -> list[str]:
    return [chunk.text for chunk in document_chunks(document=Document.objects.get(pk=document.pk))]


def test_a_run_stores_chunks_as_it_extracts_and_they_replace_the_old_ones_at_the_end(
    processed_once, monkeypatch
):
    document = processed_once
    old_texts = listed_texts(document)
    monkeypatch.setattr(pipeline, "CHUNK_BATCH_SIZE", 1)
    document = document_reprocess(document=document)
    seen = {}

    def look_while_page_3_is_extracted():
        seen["stored"] = DocumentChunk.objects.filter(generation=document.task_id).count()
        seen["listed"] = listed_texts(document)

    context = claim_and_act_at_page(document, 3, act=look_while_page_3_is_extracted)
    document_process(document_id=str(document.pk), context=context)

    assert seen["stored"] >= 6  # pages 1 and 2, about 330 characters each, in 100s
    assert seen["listed"] == old_texts  # not yet the document's
    document.refresh_from_db()
    assert document.chunks_generation == document.task_id
    stored = DocumentChunk.objects.filter(document=document).order_by("index")
    assert {chunk.generation for chunk in stored} == {document.task_id}
    assert [chunk.index for chunk in stored] == list(range(document.chunk_count))
    assert listed_texts(document) == [chunk.text for chunk in stored]
    assert len(stored) > seen["stored"]


def test_a_run_that_ends_in_an_error_deletes_the_chunks_it_stored(processed_once, monkeypatch):
    document = processed_once
    old_texts = listed_texts(document)
    monkeypatch.setattr(pipeline, "CHUNK_BATCH_SIZE", 1)
    document = document_reprocess(document=document)

    def soft_time_limit():
        assert DocumentChunk.objects.filter(generation=document.task_id).exists()
        raise SoftTimeLimitExceeded()

    context = claim_and_act_at_page(document, 3, act=soft_time_limit)
    with pytest.raises(SoftTimeLimitExceeded):
        document_process(document_id=str(document.pk), context=context)

    assert context.acted
    assert not DocumentChunk.objects.filter(generation=document.task_id).exists()
    assert listed_texts(document) == old_texts
    assert DocumentChunk.objects.filter(document=document).count() == 1


def test_cancel_after_chunks_were_stored_deletes_them_and_keeps_the_old_ones(
    processed_once, monkeypatch
):
    document = processed_once
    old_texts = listed_texts(document)
    monkeypatch.setattr(pipeline, "CHUNK_BATCH_SIZE", 1)
    document = document_reprocess(document=document)
    context = claim_and_act_at_page(
        document, 3, act=lambda: task_cancel(record=TaskRecord.objects.get(pk=document.task_id))
    )

    with pytest.raises(TaskCancelled):
        document_process(document_id=str(document.pk), context=context)

    document.refresh_from_db()
    assert document.status == DocumentStatus.CANCELLED
    assert not DocumentChunk.objects.filter(generation=document.task_id).exists()
    assert listed_texts(document) == old_texts


def stored_by_a_dead_run(document, generation, count: int = 3) -> None:
    DocumentChunk.objects.bulk_create(
        DocumentChunk(
            document=document,
            generation=generation,
            index=index,
            text=f"left behind {index}",
            start=index,
            end=index + 1,
            page_start=1,
            page_end=1,
        )
        for index in range(count)
    )


@pytest.mark.parametrize("end", ["timed out", "failed for good"])
def test_the_end_of_a_task_whose_worker_died_deletes_the_chunks_its_run_stored(processed_once, end):
    document = document_reprocess(document=processed_once)
    old_texts = listed_texts(document)
    context = claim(document)
    stored_by_a_dead_run(document, context.task_id)
    assert listed_texts(document) == old_texts

    if end == "timed out":
        task_mark_timed_out(task_id=context.task_id, error_message="Hard time limit (960 s).")
    else:
        task_mark_failed(
            task_id=context.task_id,
            error_type="WorkerLostError",
            error_message="The worker process died.",
            attempt=context.attempt,
        )

    document.refresh_from_db()
    assert document.status == DocumentStatus.FAILED
    assert not DocumentChunk.objects.filter(generation=context.task_id).exists()
    assert listed_texts(document) == old_texts


def test_the_next_run_deletes_what_earlier_runs_left_behind(processed_once):
    document = document_reprocess(document=processed_once)
    stored_by_a_dead_run(document, uuid.uuid4())
    context = claim(document)
    stored_by_a_dead_run(document, context.task_id)  # its own earlier attempt

    document_process(document_id=str(document.pk), context=context)

    document.refresh_from_db()
    stored = DocumentChunk.objects.filter(document=document)
    assert {chunk.generation for chunk in stored} == {uuid.UUID(context.task_id)}
    assert sorted(chunk.index for chunk in stored) == list(range(document.chunk_count))
