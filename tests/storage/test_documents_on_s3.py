"""Documents with their files in S3-compatible object storage (moto's server on
loopback): uploads, extracted text, downloads, reprocessing, deletes and the orphan
cleanup all go through the bucket, and scratch files stay local and are removed."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from config.storage import s3_storages
from documents.file_store import FileStoreUnavailable
from documents.models import Document, DocumentStatus
from documents.pipeline import document_process
from documents.services import document_delete, document_reprocess
from operations import maintenance
from tasks_app.models import TaskRecord
from tasks_app.task_types import get_task_type
from tests.documents import samples
from tests.documents.steps import claim, scratch_folders, upload

pytestmark = pytest.mark.django_db


def test_a_document_is_stored_processed_and_read_back_through_the_bucket(
    api, user, s3_server, s3_bucket, tmp_path
):
    pdf = samples.make_pdf(tmp_path / "two.pdf", ["Alpha page.", "Beta page."]).read_bytes()
    with (tmp_path / "two.pdf").open("rb") as upload_file:
        response = api.post("/api/v1/documents/", {"file": upload_file}, format="multipart")
    assert response.status_code == 202, response.content
    document = Document.objects.get(pk=response.json()["id"])
    assert s3_server.keys(s3_bucket) == [document.source_file.name]
    assert default_storage.open(document.source_file.name).read() == pdf

    document_process(document_id=str(document.pk), context=claim(document))

    document.refresh_from_db()
    assert document.status == DocumentStatus.COMPLETED
    assert sorted(s3_server.keys(s3_bucket)) == sorted(
        [document.source_file.name, document.text_file.name]
    )
    text = api.get(f"/api/v1/documents/{document.pk}/text/")
    assert text.status_code == 200
    assert b"".join(text.streaming_content).decode() == "Alpha page.\n\nBeta page."
    assert scratch_folders(document.pk) == []  # the local copy of the source is gone


def test_reprocess_and_delete_leave_nothing_behind_in_the_bucket(
    user, s3_server, s3_bucket, django_capture_on_commit_callbacks
):
    document = upload(user, "words.txt", b"one two three four")
    document_process(document_id=str(document.pk), context=claim(document))
    document.refresh_from_db()
    first_text = document.text_file.name

    document = document_reprocess(document=document)
    document_process(document_id=str(document.pk), context=claim(document))
    document.refresh_from_db()
    assert document.text_file.name != first_text
    assert first_text not in s3_server.keys(s3_bucket)

    with django_capture_on_commit_callbacks(execute=True):  # files go once the row is gone
        document_delete(document=document)
    assert s3_server.keys(s3_bucket) == []


def test_the_orphan_cleanup_lists_and_deletes_in_the_bucket(user, s3_server, s3_bucket, settings):
    kept = upload(user, "kept.txt", b"kept words")
    orphan = upload(user, "orphan.txt", b"orphan words")
    orphan_key = orphan.source_file.name
    Document.objects.filter(pk=orphan.pk).delete()  # its row gone, as after a crash

    later = timezone.now() + timedelta(days=2)
    counts = maintenance.orphan_files_cleanup(now=later)

    assert counts["orphan_folders_removed"] == 1
    assert s3_server.keys(s3_bucket) == [kept.source_file.name]
    assert orphan_key not in s3_server.keys(s3_bucket)


@pytest.fixture
def store_down(s3_server, settings) -> None:
    """The service's storage pointed at an address where nothing answers, failing fast."""
    from tests.storage.s3 import _free_port

    down = s3_storages(
        bucket="unreachable",
        endpoint_url=f"http://127.0.0.1:{_free_port()}",
        region="us-east-1",
        connect_timeout=0.5,
        attempts=1,
    )
    settings.STORAGES = down


def test_an_upload_while_the_store_is_down_is_a_503_that_says_so(api, store_down):
    response = api.post(
        "/api/v1/documents/",
        {"file": SimpleUploadedFile("notes.txt", b"some words here")},
        format="multipart",
    )
    assert response.status_code == 503
    assert "file store could not be reached" in response.json()["detail"]
    assert not Document.objects.exists() and not TaskRecord.objects.exists()


def test_a_run_while_the_store_is_down_is_retried_not_failed(user, s3_bucket, settings):
    document = upload(user, "notes.txt", b"some words here")
    context = claim(document)
    down = s3_storages(
        bucket="unreachable",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        connect_timeout=0.5,
        attempts=1,
    )
    settings.STORAGES = down

    with pytest.raises(FileStoreUnavailable) as raised:
        document_process(document_id=str(document.pk), context=context)

    assert get_task_type("documents.process").retry.should_retry(raised.value, retries_done=0)
    assert scratch_folders(document.pk) == []
