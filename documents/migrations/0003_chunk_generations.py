"""Chunks carry the processing run that stored them, so a run can store them as it goes.

Existing chunks become their document's current generation: the id of the document's
latest processing task, or a new id where retention has removed that task.
"""

import uuid

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def tag_existing_chunks(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    DocumentChunk = apps.get_model("documents", "DocumentChunk")
    with_chunks = Document.objects.filter(chunks__isnull=False).distinct()
    with_chunks.filter(task__isnull=False).update(chunks_generation=models.F("task_id"))
    for document_id in with_chunks.filter(task__isnull=True).values_list("pk", flat=True):
        Document.objects.filter(pk=document_id).update(chunks_generation=uuid.uuid4())
    generation = Document.objects.filter(pk=OuterRef("document_id")).values("chunks_generation")
    DocumentChunk.objects.update(generation=Subquery(generation[:1]))


def keep_current_chunks_only(apps, schema_editor):
    # The old unique (document, index) holds for one generation per document.
    DocumentChunk = apps.get_model("documents", "DocumentChunk")
    DocumentChunk.objects.exclude(generation=models.F("document__chunks_generation")).delete()


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_chunk_text_search_index")]

    operations = [
        migrations.AddField(
            model_name="document",
            name="chunks_generation",
            field=models.UUIDField(
                blank=True,
                help_text="Which stored chunks are the document's: the id of the processing "
                "task that made them.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="documentchunk",
            name="generation",
            field=models.UUIDField(
                help_text="The processing task that made this chunk.", null=True
            ),
        ),
        migrations.RunPython(tag_existing_chunks, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="documentchunk",
            name="generation",
            field=models.UUIDField(help_text="The processing task that made this chunk."),
        ),
        migrations.RemoveConstraint(model_name="documentchunk", name="chunk_unique_index"),
        migrations.AddConstraint(
            model_name="documentchunk",
            constraint=models.UniqueConstraint(
                fields=("document", "generation", "index"), name="chunk_unique_index"
            ),
        ),
        # Last, so that going back it runs before the old constraint returns.
        migrations.RunPython(migrations.RunPython.noop, keep_current_chunks_only),
    ]
