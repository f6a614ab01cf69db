import pytest

from documents.models import Document, DocumentChunk
from tests.factories import TaskRecordFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_document_admin_lists_filters_and_links_to_the_task(admin_client, user):
    task = TaskRecordFactory(owner=user, task_type="documents.process")
    document = Document.objects.create(owner=user, filename="a.pdf", kind="pdf", task=task)
    DocumentChunk.objects.create(
        document=document, index=0, text="hello", start=0, end=5, page_start=1, page_end=1
    )

    listing = admin_client.get("/admin/documents/document/", {"status": "queued", "kind": "pdf"})
    detail = admin_client.get(f"/admin/documents/document/{document.pk}/change/")

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert detail.status_code == 200
    assert f"/admin/tasks_app/taskrecord/{task.pk}/change/" in detail.content.decode()
    assert admin_client.get("/admin/documents/documentchunk/").status_code == 200
