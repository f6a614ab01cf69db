"""Migration documents/0003 on a database that holds chunks: forward, back and forward."""

import uuid

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from documents.models import Document, DocumentChunk
from tests.factories import TaskRecordFactory, UserFactory

BEFORE = ("documents", "0002_chunk_text_search_index")


def old_chunk(apps, document_id, index: int):
    return apps.get_model("documents", "DocumentChunk").objects.create(
        document_id=document_id,
        index=index,
        text=f"chunk {index}",
        start=0,
        end=7,
        page_start=1,
        page_end=1,
    )


@pytest.mark.django_db(transaction=True)
def test_existing_chunks_become_their_documents_current_generation_and_back():
    owner = UserFactory()
    task = TaskRecordFactory(owner=owner, task_type="documents.process")
    call_command("migrate", *BEFORE, verbosity=0)
    apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    OldDocument = apps.get_model("documents", "Document")
    with_task = OldDocument.objects.create(owner_id=owner.pk, filename="a.txt", task_id=task.pk)
    without_task = OldDocument.objects.create(owner_id=owner.pk, filename="b.txt")
    never_processed = OldDocument.objects.create(owner_id=owner.pk, filename="c.txt")
    for index in range(2):
        old_chunk(apps, with_task.pk, index)
        old_chunk(apps, without_task.pk, index)

    call_command("migrate", "documents", verbosity=0)

    with_task, without_task, never_processed = (
        Document.objects.get(pk=document.pk)
        for document in (with_task, without_task, never_processed)
    )
    assert with_task.chunks_generation == task.pk
    assert without_task.chunks_generation is not None
    assert never_processed.chunks_generation is None
    for document in (with_task, without_task):
        generations = set(document.chunks.values_list("generation", flat=True))
        assert generations == {document.chunks_generation}

    DocumentChunk.objects.create(
        document=with_task,
        generation=uuid.uuid4(),
        index=0,
        text="left behind",
        start=0,
        end=11,
        page_start=1,
        page_end=1,
    )
    call_command("migrate", *BEFORE, verbosity=0)  # back: one generation per document again
    call_command("migrate", "documents", verbosity=0)

    for document in Document.objects.filter(pk__in=[with_task.pk, without_task.pk]):
        chunks = document.chunks.order_by("index")
        assert [chunk.text for chunk in chunks] == ["chunk 0", "chunk 1"]
        assert {chunk.generation for chunk in chunks} == {document.chunks_generation}
