"""Write paths of documents: upload, ingest a URL, reprocess, delete, follow the task.

The processing itself runs in the worker (documents.pipeline); these services record
the document and hand its processing to the task pipeline like any other job.
"""

import logging
from functools import partial
from pathlib import PurePath
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils.text import get_valid_filename

from documents.errors import DocumentBusy
from documents.file_store import file_store_errors
from documents.models import Document, DocumentChunk, DocumentStatus
from documents.processing import EmptyDocument
from documents.processing.detect import detect_kind
from documents.processing.fetch import FetchPolicy, check_url
from tasks_app.errors import TaskNotCancellable
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.services import task_cancel, task_submit
from tasks_app.task_types import get_task_type

logger = logging.getLogger(__name__)

PROCESS_TASK_TYPE = "documents.process"

# What a processing task's end means for its document. The body itself only ever reports
# success (documents.pipeline); every other end is recorded on the task, and followed here.
_STATUS_AFTER_TASK = {
    TaskStatus.FAILED: DocumentStatus.FAILED,
    TaskStatus.TIMED_OUT: DocumentStatus.FAILED,
    TaskStatus.CANCELLED: DocumentStatus.CANCELLED,
}


def fetch_policy() -> FetchPolicy:
    return FetchPolicy(
        max_bytes=settings.DOCUMENTS_FETCH_MAX_BYTES,
        total_timeout=settings.DOCUMENTS_FETCH_TIMEOUT,
        allowlist=tuple(settings.DOCUMENTS_URL_ALLOWLIST),
    )


def sanitize_filename(name: str) -> str:
    """The client's file name, reduced to a safe display name: no folders, no odd characters."""
    base = PurePath(name.replace("\\", "/")).name
    return (get_valid_filename(base) if base.strip(". ") else "")[:200] or "upload"


def document_upload(*, owner: AbstractBaseUser, uploaded_file: UploadedFile) -> Document:
    """Store an uploaded file under its document's id and queue its processing.

    Raises ``EmptyDocument`` or ``UnsupportedDocument`` (sniffed from the bytes) before
    anything is stored, and ``FileStoreUnavailable`` when the file store cannot take it.
    """
    if not uploaded_file.size:
        raise EmptyDocument("The file is empty.")
    filename = sanitize_filename(uploaded_file.name or "")
    kind = detect_kind(uploaded_file, filename=filename)
    document = Document(owner=owner, filename=filename, kind=kind, size=uploaded_file.size)
    with file_store_errors():  # the store down: a 503 that says so, not a 500
        document.source_file.save(document.filename, uploaded_file, save=False)
    try:
        with transaction.atomic():
            document.save()
            _queue_processing(document)
    except BaseException:
        default_storage.delete(document.source_file.name)
        raise
    logger.info("document uploaded id=%s kind=%s size=%s", document.pk, kind, document.size)
    return document


@transaction.atomic
def document_ingest_url(*, owner: AbstractBaseUser, url: str) -> Document:
    """Record a web page to fetch; the worker downloads it. Raises ``UrlNotAllowed``."""
    check_url(url, policy=fetch_policy())
    name = PurePath(urlsplit(url).path).name or urlsplit(url).hostname or "page"
    document = Document.objects.create(
        owner=owner, filename=sanitize_filename(name), source_url=url
    )
    _queue_processing(document)
    logger.info("document url submitted id=%s", document.pk)
    return document


@transaction.atomic
def document_reprocess(*, document: Document) -> Document:
    """Process a finished document again; its current text and chunks stay until replaced.

    Raises ``DocumentBusy`` while an earlier processing has not finished.
    """
    if not Document.objects.transition(pk=document.pk, to=DocumentStatus.QUEUED, error_message=""):
        document.refresh_from_db()
        raise DocumentBusy(status=document.status)
    _queue_processing(document)
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """Cancel a processing still under way, then remove the document, its files and chunks."""
    if document.task_id:
        try:
            task_cancel(record=document.task)
        except TaskNotCancellable:
            pass  # finished already: nothing to stop
    file_names = [name for name in (document.source_file.name, document.text_file.name) if name]
    document_id = document.pk  # delete() sets it to None
    with transaction.atomic():
        # PostgreSQL checks Django's foreign keys at commit: a run's chunk committed after
        # the cascade below removed the chunks it saw, and before this commit, failed this
        # commit (a 500). With the row locked first, such a commit waits for this one (its
        # check locks the row) and is then refused instead, as its document is gone.
        # (SQLite's IMMEDIATE transactions serialize writers anyway.)
        Document.objects.select_for_update().filter(pk=document_id).exists()
        document.delete()
        transaction.on_commit(partial(_delete_files, file_names))
    logger.info("document deleted id=%s", document_id)


def document_follow_task(record: TaskRecord) -> None:
    """``on_finished`` of documents.process: the unfinished document follows its task's end.

    Called in the transaction that moves the task to a final status. The body reports
    only success itself (it stores the text and completes the document); a failure it
    raised, a time limit, a worker lost for good, or a cancel (before or while it ran)
    ends the task, not the document: here the document, still queued or processing, takes
    that end as failed or cancelled, with the task's error message, and the chunks the run
    stored are deleted. A task the document was reprocessed away from is no longer its
    ``task`` and changes nothing else.
    """
    status = _STATUS_AFTER_TASK.get(record.status)
    if status is None:
        return
    # The chunks the run stored before it ended, where its body could not delete them
    # itself (a hard time limit, a worker lost for good).
    DocumentChunk.objects.filter(
        document_id=record.input.get("document_id"), generation=record.pk
    ).exclude(document__chunks_generation=record.pk).delete()
    document_id = Document.objects.filter(task_id=record.pk).values_list("pk", flat=True).first()
    if document_id is not None:
        Document.objects.transition(
            pk=document_id,
            to=status,
            only_if=Q(task_id=record.pk),
            error_message=record.error_message,
        )


def _queue_processing(document: Document) -> None:
    record = task_submit(
        owner=document.owner,
        task_type=get_task_type(PROCESS_TASK_TYPE),
        input_data={"document_id": str(document.pk)},
    )
    # The document is queued already: created so, or just moved back by document_reprocess.
    Document.objects.filter(pk=document.pk).update(task=record)
    document.task = record


def _delete_files(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)
