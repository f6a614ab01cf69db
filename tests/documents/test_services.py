"""Document services called directly: what they record, store, queue, refuse and remove."""

import threading
import uuid

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.db.models.signals import post_delete

from documents.errors import DocumentBusy
from documents.models import Document, DocumentChunk, DocumentStatus
from documents.pipeline import document_process
from documents.processing import EmptyDocument, UnsupportedDocument, UrlNotAllowed
from documents.services import (
    document_delete,
    document_ingest_url,
    document_reprocess,
    document_upload,
)
from tasks_app.errors import ActiveTaskLimitReached
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.services import task_cancel
from tasks_app.transitions import task_mark_failed, task_mark_succeeded, task_mark_timed_out
from tests.documents.steps import claim, upload

pytestmark = pytest.mark.django_db

TEXT = b"Some words to keep.\n"


def stored_names() -> set[str]:
    """Every file under documents/ in storage (other tests' files included)."""
    if not default_storage.exists("documents"):
        return set()
    folders = default_storage.listdir("documents")[0]
    return {
        f"documents/{folder}/{name}"
        for folder in folders
        for name in default_storage.listdir(f"documents/{folder}")[1]
    }


def test_upload_stores_the_file_under_the_documents_id_and_queues_its_processing(user):
    document = upload(user, "../My notes (v2).txt", TEXT)

    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert (document.filename, document.kind, document.size) == ("My_notes_v2.txt", "text", 20)
    assert document.source_file.name == f"documents/{document.pk}/source.text"
    assert default_storage.open(document.source_file.name).read() == TEXT
    task = document.task
    assert (task.task_type, task.status, task.owner) == ("documents.process", "queued", user)
    assert task.input == {"document_id": str(document.pk)}


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("empty.txt", b"", EmptyDocument),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(64), UnsupportedDocument),
    ],
)
def test_upload_that_is_refused_stores_and_queues_nothing(user, name, content, error):
    before = stored_names()

    with pytest.raises(error):
        document_upload(owner=user, uploaded_file=SimpleUploadedFile(name, content))

    assert not Document.objects.exists()
    assert not TaskRecord.objects.exists()
    assert stored_names() == before


def test_upload_over_the_owners_task_limit_removes_the_file_it_stored(user, settings):
    settings.TASKS_MAX_ACTIVE_PER_USER = 0
    before = stored_names()

    with pytest.raises(ActiveTaskLimitReached):
        upload(user, "notes.txt", TEXT)

    assert not Document.objects.exists()
    assert stored_names() == before


def test_ingest_url_records_the_page_for_the_worker_to_fetch(user):
    document = document_ingest_url(owner=user, url="https://example.com/guides/intro.html?x=1")

    document.refresh_from_db()
    assert (document.status, document.filename) == (DocumentStatus.QUEUED, "intro.html")
    assert document.source_url == "https://example.com/guides/intro.html?x=1"
    assert (document.source_file.name, document.kind, document.size) == ("", "", None)
    assert document.task.status == TaskStatus.QUEUED


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/admin", "http://[::1]/", "ftp://example.com/a", "http://u:p@x.org/"]
)
def test_ingest_of_a_url_that_can_never_be_fetched_records_nothing(user, url):
    with pytest.raises(UrlNotAllowed):
        document_ingest_url(owner=user, url=url)

    assert not Document.objects.exists()
    assert not TaskRecord.objects.exists()


def test_reprocess_of_a_queued_document_is_busy_and_changes_nothing(user):
    document = upload(user, "notes.txt", TEXT)

    with pytest.raises(DocumentBusy) as raised:
        document_reprocess(document=document)

    assert raised.value.status == DocumentStatus.QUEUED
    assert TaskRecord.objects.count() == 1


def test_reprocess_of_a_processing_document_is_busy(user):
    document = upload(user, "notes.txt", TEXT)
    running = claim(document)
    assert Document.objects.transition(pk=document.pk, to=DocumentStatus.PROCESSING)

    with pytest.raises(DocumentBusy, match="The document is processing"):
        document_reprocess(document=document)

    document.refresh_from_db()
    assert (document.status, str(document.task_id)) == ("processing", running.task_id)
    assert TaskRecord.objects.count() == 1


def test_reprocess_of_a_failed_document_clears_its_error_and_queues_a_new_task(user):
    document = upload(user, "notes.txt", TEXT)
    failed = claim(document)
    task_mark_failed(task_id=failed.task_id, error_type="DocumentError", error_message="Bad file.")
    document.refresh_from_db()
    assert (document.status, document.error_message) == ("failed", "Bad file.")

    document = document_reprocess(document=document)

    assert (document.status, document.error_message) == ("queued", "")
    assert str(document.task_id) != failed.task_id
    assert document.task.status == TaskStatus.QUEUED


def test_task_cancelled_before_it_started_cancels_its_document(user):
    document = upload(user, "notes.txt", TEXT)

    task_cancel(record=document.task)

    document.refresh_from_db()
    assert (document.status, document.error_message) == ("cancelled", "")


def test_task_that_timed_out_fails_its_document_with_the_tasks_message(user):
    document = upload(user, "notes.txt", TEXT)
    context = claim(document)
    assert Document.objects.transition(pk=document.pk, to=DocumentStatus.PROCESSING)

    task_mark_timed_out(
        task_id=context.task_id, error_message="Ran past 900 s.", attempt=context.attempt
    )

    document.refresh_from_db()
    assert (document.status, document.error_message) == ("failed", "Ran past 900 s.")


def test_delete_of_a_queued_document_cancels_its_task_and_removes_the_file_on_commit(
    user, django_capture_on_commit_callbacks
):
    document = upload(user, "notes.txt", TEXT)
    source = document.source_file.name

    with django_capture_on_commit_callbacks() as on_commit:
        document_delete(document=document)
        assert default_storage.exists(source)  # a rollback must not lose the file

    for callback in on_commit:
        callback()
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not default_storage.exists(source)
    assert TaskRecord.objects.get(pk=document.task_id).status == TaskStatus.CANCELLED


def test_delete_of_a_completed_document_removes_its_text_and_chunks_and_keeps_the_task(
    user, django_capture_on_commit_callbacks
):
    document = upload(user, "notes.txt", TEXT)
    context = claim(document)
    result = document_process(document_id=str(document.pk), context=context)
    task_mark_succeeded(task_id=context.task_id, result=result, attempt=context.attempt)
    document.refresh_from_db()
    names = [document.source_file.name, document.text_file.name]
    assert all(default_storage.exists(name) for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=document)

    assert not any(default_storage.exists(name) for name in names)
    assert not DocumentChunk.objects.filter(document_id=document.pk).exists()
    task = TaskRecord.objects.get(pk=document.task_id)
    assert (task.status, task.result) == (TaskStatus.SUCCEEDED, result)


@pytest.mark.django_db(transaction=True)
def test_a_chunk_committed_while_its_document_is_deleted_neither_fails_the_delete_nor_stays(
    user,
):
    """A worker's run commits a chunk just as a delete has collected the document's chunks
    and is about to remove the row (a 500 on PostgreSQL, an IntegrityError, found by CI
    under load): the delete succeeds and leaves no chunk; the run's commit is the one
    refused, as its document is gone."""
    document = upload(user, "notes.txt", TEXT)
    chunk = {"index": 0, "text": "Some", "start": 0, "end": 4, "page_start": 1, "page_end": 1}
    DocumentChunk.objects.create(document_id=document.pk, generation=uuid.uuid4(), **chunk)
    chunk_open, collected, chunk_done = threading.Event(), threading.Event(), threading.Event()
    outcomes = {}

    def run_stores_a_chunk():
        try:
            with transaction.atomic():
                DocumentChunk.objects.create(
                    document_id=document.pk, generation=document.task_id, **chunk
                )
                chunk_open.set()
                collected.wait(timeout=3)  # never set on SQLite: writers queue there
            outcomes["run"] = "committed"
        except Exception as error:
            outcomes["run"] = error
        finally:
            chunk_done.set()
            connection.close()

    def let_the_run_commit_now(sender, instance, **kwargs):
        # The delete has removed the chunks it found; the document's row goes next.
        collected.set()
        chunk_done.wait(timeout=2)  # the run's commit waits on the delete where it must

    def delete():
        try:
            document_delete(document=Document.objects.get(pk=document.pk))
            outcomes["delete"] = "deleted"
        except Exception as error:
            outcomes["delete"] = error
        finally:
            connection.close()

    storing = threading.Thread(target=run_stores_a_chunk)
    storing.start()
    assert chunk_open.wait(timeout=10)
    # A receiver also makes the delete collect the chunks first (no single fast DELETE).
    post_delete.connect(let_the_run_commit_now, sender=DocumentChunk)
    try:
        deleting = threading.Thread(target=delete)
        deleting.start()
        deleting.join(timeout=20)
        storing.join(timeout=20)
    finally:
        post_delete.disconnect(let_the_run_commit_now, sender=DocumentChunk)

    assert outcomes["delete"] == "deleted", outcomes
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not DocumentChunk.objects.filter(document_id=document.pk).exists()
