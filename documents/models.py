import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from documents.processing import DocumentKind
from tasks_app.models import TransitionQuerySet


class DocumentStatus(models.TextChoices):
    """Where a document's processing is. The allowed moves are in ``TRANSITIONS``.

    queued      waiting for a worker (after upload, URL submission or reprocess).
    processing  a worker is fetching, extracting and chunking it.
    completed   text and chunks are stored and searchable.               (final)
    failed      processing stopped; ``error_message`` says why.           (final)
    cancelled   its processing task was cancelled.                        (final)

    One path: queued -> processing -> completed | failed | cancelled. A processing task
    that ends before it starts leaves queued for failed or cancelled directly, and
    reprocessing takes a final document back to queued; its old text and chunks stay
    until the new ones replace them in one transaction.
    """

    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The one state machine of a document: from each status, where it may go next. A document
# follows its latest processing task (``Document.task``): the task's body moves it to
# processing and completed (documents.pipeline), the task's own end moves it to failed or
# cancelled (documents.services.document_follow_task), and the owner reprocesses it.
# Every write of ``status`` is a conditional update built from this table
# (Document.objects.transition).
TRANSITIONS: dict[str, frozenset[str]] = {
    DocumentStatus.QUEUED: frozenset(
        {DocumentStatus.PROCESSING, DocumentStatus.FAILED, DocumentStatus.CANCELLED}
    ),
    DocumentStatus.PROCESSING: frozenset(
        {
            # The same task again: a retry, or a redelivery after its worker died.
            DocumentStatus.PROCESSING,
            DocumentStatus.COMPLETED,
            DocumentStatus.FAILED,
            DocumentStatus.CANCELLED,
        }
    ),
    DocumentStatus.COMPLETED: frozenset({DocumentStatus.QUEUED}),
    DocumentStatus.FAILED: frozenset({DocumentStatus.QUEUED}),
    DocumentStatus.CANCELLED: frozenset({DocumentStatus.QUEUED}),
}


class DocumentQuerySet(TransitionQuerySet):
    """``transition()`` moves a document along ``TRANSITIONS``; ``only_if`` such as
    ``Q(task_id=...)`` keeps a task the document was reprocessed away from out."""

    transitions = TRANSITIONS


def source_file_key(document: "Document", filename: str) -> str:
    # Keyed by id and detected kind: nothing of the client's filename reaches storage.
    return f"documents/{document.pk}/source.{document.kind or 'bin'}"


def text_file_key(document: "Document", filename: str) -> str:
    return f"documents/{document.pk}/text.txt"


class Document(models.Model):
    """A user's uploaded file or ingested web page, and what processing made of it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents"
    )
    filename = models.CharField(max_length=255, help_text="Sanitized name, for display only.")
    source_url = models.URLField(max_length=2048, blank=True)
    kind = models.CharField(
        max_length=20, choices=[(k.value, k.name) for k in DocumentKind], blank=True
    )
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes of the stored source.")
    source_file = models.FileField(upload_to=source_file_key, max_length=255, blank=True)
    text_file = models.FileField(upload_to=text_file_key, max_length=255, blank=True)

    status = models.CharField(
        max_length=20, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED
    )
    task = models.ForeignKey(
        "tasks_app.TaskRecord",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The latest processing task.",
    )
    error_message = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    word_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(null=True, blank=True)
    chunks_generation = models.UUIDField(
        null=True,
        blank=True,
        help_text="Which stored chunks are the document's: the id of the processing task "
        "that made them.",
    )

    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="document_owner_created"),
            models.Index(fields=["owner", "status", "-created_at"], name="document_owner_status"),
            models.Index(fields=["owner", "kind", "-created_at"], name="document_owner_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"


class DocumentChunkQuerySet(models.QuerySet):
    def current(self) -> "DocumentChunkQuerySet":
        """The chunks that are their documents' now: not a run's still being stored."""
        return self.filter(generation=models.F("document__chunks_generation"))


class DocumentChunk(models.Model):
    """A piece of a document's text, with where it sits in the text and on which pages.

    A processing run stores its chunks while it still extracts, tagged with its own
    ``generation`` (its task id); they become the document's when the run's last short
    transaction sets ``Document.chunks_generation`` to it and deletes the previous ones.
    Readers take only the document's current generation (documents.selectors,
    documents.search), so they never see a run half stored.

    On PostgreSQL a GIN index over ``to_tsvector('english', text)`` serves search
    (migration 0002); SQLite searches with a plain scan.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    generation = models.UUIDField(help_text="The processing task that made this chunk.")
    index = models.PositiveIntegerField()
    text = models.TextField()
    start = models.PositiveIntegerField(help_text="Offset of the first character in the text.")
    end = models.PositiveIntegerField(help_text="Offset just past the last character.")
    page_start = models.PositiveIntegerField()
    page_end = models.PositiveIntegerField()

    objects = DocumentChunkQuerySet.as_manager()

    class Meta:
        ordering = ["document", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "generation", "index"], name="chunk_unique_index"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.index}"
