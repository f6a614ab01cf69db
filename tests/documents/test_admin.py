import pytest
from django.core.files.storage import default_storage

from documents.models import Document, DocumentChunk
from documents.pipeline import document_process
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.transitions import task_mark_succeeded
from tests.documents.steps import claim, upload
from tests.factories import TaskRecordFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_document_admin_lists_filters_and_links_to_the_task(admin_client, user):
    task = TaskRecordFactory(owner=user, task_type="documents.process")
    document = Document.objects.create(
        owner=user, filename="a.pdf", kind="pdf", task=task, chunks_generation=task.pk
    )
    DocumentChunk.objects.create(
        document=document,
        generation=task.pk,
        index=0,
        text="hello",
        start=0,
        end=5,
        page_start=1,
        page_end=1,
    )

    listing = admin_client.get("/admin/documents/document/", {"status": "queued", "kind": "pdf"})
    detail = admin_client.get(f"/admin/documents/document/{document.pk}/change/")

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert detail.status_code == 200
    assert f"/admin/tasks_app/taskrecord/{task.pk}/change/" in detail.content.decode()
    assert admin_client.get("/admin/documents/documentchunk/").status_code == 200


@pytest.fixture
def queued_document(user) -> Document:
    """Uploaded, with its processing task queued."""
    return upload(user, "queued.txt", b"Waiting for a worker.")


@pytest.fixture
def completed_document(user) -> Document:
    """Processed: it has a source file, a text file and chunks; its task succeeded."""
    document = upload(user, "done.txt", b"Already processed.")
    context = claim(document)
    result = document_process(document_id=str(document.pk), context=context)
    task_mark_succeeded(task_id=context.task_id, result=result, attempt=context.attempt)
    document.refresh_from_db()
    return document


def files_of(*documents: Document) -> list[str]:
    return [
        name
        for document in documents
        for name in (document.source_file.name, document.text_file.name)
        if name
    ]


def test_admin_delete_view_cancels_the_processing_and_removes_the_files(
    admin_client, queued_document, django_capture_on_commit_callbacks
):
    url = f"/admin/documents/document/{queued_document.pk}/delete/"
    assert default_storage.exists(queued_document.source_file.name)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Document.objects.filter(pk=queued_document.pk).exists()
    assert not default_storage.exists(queued_document.source_file.name)
    assert TaskRecord.objects.get(pk=queued_document.task_id).status == TaskStatus.CANCELLED


def test_admin_delete_selected_deletes_each_document_through_the_service(
    admin_client, queued_document, completed_document, django_capture_on_commit_callbacks
):
    names = files_of(queued_document, completed_document)
    assert len(names) == 3 and all(default_storage.exists(name) for name in names)
    assert DocumentChunk.objects.filter(document=completed_document).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/documents/document/",
            {
                "action": "delete_selected",
                "_selected_action": [queued_document.pk, completed_document.pk],
                "post": "yes",
            },
        )

    assert response.status_code == 302
    assert not Document.objects.exists()
    assert not DocumentChunk.objects.exists()
    assert not any(default_storage.exists(name) for name in names)
    tasks = TaskRecord.objects.in_bulk([queued_document.task_id, completed_document.task_id])
    assert tasks[queued_document.task_id].status == TaskStatus.CANCELLED
    assert tasks[completed_document.task_id].status == TaskStatus.SUCCEEDED
