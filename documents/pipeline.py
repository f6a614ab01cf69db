"""Processing one document in the worker: fetch, extract, normalize, chunk, store.

Memory stays flat in the document's size: a child process parses the file under memory
and time limits (documents.processing.isolation) and hands back normalized pages, long ones
in pieces, one at a time. The text goes to a file in a scratch folder; the chunks are
stored in small batches while the child still parses, tagged with this run's generation
(its task id), which no reader takes yet. One short transaction at the end makes the new
text and chunks the document's and deletes the previous ones.

The scratch folder is removed on every way out (success, error, cancel, soft time limit),
and the child process is stopped on every way out too. A run that does not complete
deletes the chunks it stored; where its process died first, its task's end does
(documents.services.document_follow_task), and so does the document's next run.
"""

import logging
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from documents.file_store import file_store_errors
from documents.models import Document, DocumentChunk, DocumentStatus
from documents.processing import DocumentError, Page
from documents.processing.chunking import Chunker, word_count
from documents.processing.detect import detect_web_kind
from documents.processing.fetch import fetch_url
from documents.processing.isolation import ChildExtraction, ExtractionLimits
from documents.processing.spare import process_spare
from documents.services import fetch_policy
from tasks_app.errors import PermanentTaskError
from tasks_app.execution import TaskCancelled, TaskContext

logger = logging.getLogger(__name__)

# Chunks go to the database in batches of this many as extraction produces them. Each
# batch is one INSERT and commit, made while the child parses on: PostgreSQL's work on it
# (the search index's to_tsvector above all) overlaps the parse instead of following it.
CHUNK_BATCH_SIZE = 50


@dataclass
class Extraction:
    pages: int = 0
    words: int = 0
    chunks: int = 0


def extraction_limits() -> ExtractionLimits:
    return ExtractionLimits(
        memory_bytes=settings.DOCUMENTS_PARSE_MEMORY_BYTES,
        seconds=settings.DOCUMENTS_PARSE_TIMEOUT,
        max_docx_uncompressed_bytes=settings.DOCUMENTS_MAX_DOCX_UNCOMPRESSED_BYTES,
    )


def document_process(*, document_id: str, context: TaskContext) -> dict:
    """The body of ``documents.process``: returns the counts it stored."""
    # Only the document's latest task may work on it; a retry finds it processing already.
    ours = Q(task_id=context.task_id)
    if not Document.objects.transition(pk=document_id, to=DocumentStatus.PROCESSING, only_if=ours):
        raise PermanentTaskError("The document was deleted or is processed by a newer task.")
    document = Document.objects.get(pk=document_id)
    _delete_stale_chunks(document, generation=context.task_id)

    settings.DOCUMENTS_TMP_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{document_id}-", dir=settings.DOCUMENTS_TMP_DIR))
    try:
        if document.source_url and not document.source_file:
            _fetch_source(document, workdir, context)
        source = _local_source(document, workdir)
        extraction = _extract(document, source, workdir, context)
        _store(document, workdir, extraction, context)
    except BaseException:
        _delete_unused_generation(document.pk, generation=context.task_id)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logger.info(
        "document processed id=%s pages=%s words=%s chunks=%s",
        document_id,
        extraction.pages,
        extraction.words,
        extraction.chunks,
    )
    return {"document_id": document_id, **asdict(extraction)}


def _delete_stale_chunks(document: Document, *, generation) -> None:
    """Delete what runs that did not complete left: this task's earlier attempt among them."""
    stale = ~Q(generation=document.chunks_generation) | Q(generation=generation)
    DocumentChunk.objects.filter(stale, document_id=document.pk).delete()


def _delete_unused_generation(document_id, *, generation) -> None:
    """Delete the chunks this run stored, unless they became the document's."""
    try:
        DocumentChunk.objects.filter(document_id=document_id, generation=generation).exclude(
            document__chunks_generation=generation
        ).delete()
    except Exception:
        # The run's own error says more; the document's next run deletes these instead.
        logger.exception("could not delete the chunks of run %s of %s", generation, document_id)


def _fetch_source(document: Document, workdir: Path, context: TaskContext) -> None:
    context.report_progress(0, None, "fetching the page")
    download = workdir / "download"
    with download.open("wb") as out:
        page = fetch_url(document.source_url, out, policy=fetch_policy())
    with download.open("rb") as stored:
        document.kind = detect_web_kind(stored.read(64 * 1024), content_type=page.content_type)
        document.filename = page.suggested_filename
        document.size = page.size
        stored.seek(0)
        document.source_file.save(document.filename, File(stored), save=False)
    Document.objects.filter(pk=document.pk).update(
        kind=document.kind,
        filename=document.filename,
        size=document.size,
        source_file=document.source_file.name,
    )


def _local_source(document: Document, workdir: Path) -> Path:
    try:
        return Path(default_storage.path(document.source_file.name))
    except NotImplementedError:  # remote storage (S3 and the like): copy it here first
        local = workdir / "source"
        with file_store_errors(), default_storage.open(document.source_file.name, "rb") as remote:
            with local.open("wb") as out:
                shutil.copyfileobj(remote, out)
        return local


def _extract(document: Document, source: Path, workdir: Path, context: TaskContext) -> Extraction:
    total_pages = None  # known for PDFs only, as soon as the file is open

    def learn_page_count(count: int) -> None:
        nonlocal total_pages
        total_pages = count

    chunker = Chunker(size=settings.DOCUMENTS_CHUNK_SIZE, overlap=settings.DOCUMENTS_CHUNK_OVERLAP)
    extraction = Extraction()
    pending: list[DocumentChunk] = []

    def write_chunks(chunks: Iterable, *, last: bool = False) -> None:
        for chunk in chunks:
            pending.append(
                DocumentChunk(document_id=document.pk, generation=context.task_id, **asdict(chunk))
            )
            extraction.chunks += 1
        if len(pending) >= CHUNK_BATCH_SIZE or (last and pending):
            DocumentChunk.objects.bulk_create(pending)
            pending.clear()

    with (workdir / "text.txt").open("w", encoding="utf-8") as text_out:
        # The file is parsed in a child process under memory and time limits (one this
        # process started ahead, if it has one); what comes back is normalized text, a
        # page (or a piece of a long page) at a time.
        ends_in_word = False  # the last piece ended inside a word the next one may go on
        with ChildExtraction(
            document.kind,
            source,
            limits=extraction_limits(),
            on_page_count=learn_page_count,
            on_idle=context.raise_if_cancelled,
            spare=process_spare,
        ) as pieces:
            for piece in pieces:
                if piece.first:
                    text_out.write(("\n\n" if extraction.pages else "") + piece.text)
                    extraction.pages += 1
                else:
                    text_out.write(piece.text)
                extraction.words += word_count(piece.text)
                if not piece.first and ends_in_word and piece.text[:1].strip():
                    extraction.words -= 1  # one word, cut in two pieces
                if piece.text:
                    ends_in_word = not piece.text[-1].isspace()
                page = Page(number=piece.number, text=piece.text)
                write_chunks(chunker.feed(page, continues_page=not piece.first))
                if piece.first:
                    of_total = f" of {total_pages}" if total_pages else ""
                    context.report_progress(
                        extraction.pages,
                        total_pages,
                        f"extracted page {extraction.pages}{of_total}",
                    )
    write_chunks(chunker.finish(), last=True)
    if not extraction.words:
        raise DocumentError(
            "No text could be found in the document. Scanned pages (images) are not "
            "supported: text recognition (OCR) is not available."
        )
    return extraction


def _store(document: Document, workdir: Path, extraction: Extraction, context: TaskContext):
    context.report_progress(extraction.pages, extraction.pages, "storing text and chunks")
    # A new name per run: readers keep the old text until the switch below commits.
    with file_store_errors(), (workdir / "text.txt").open("rb") as text_in:
        text_name = default_storage.save(
            f"documents/{document.pk}/text-{context.task_id}.txt", File(text_in)
        )
    old_text_name = document.text_file.name
    try:
        with transaction.atomic():
            still_ours = Document.objects.transition(
                pk=document.pk,
                to=DocumentStatus.COMPLETED,
                only_if=Q(task_id=context.task_id),
                text_file=text_name,
                page_count=extraction.pages,
                word_count=extraction.words,
                chunk_count=extraction.chunks,
                chunks_generation=context.task_id,
                processed_at=timezone.now(),
                error_message="",
            )
            if not still_ours:
                raise TaskCancelled(context.task_id)
            DocumentChunk.objects.filter(document_id=document.pk).exclude(
                generation=context.task_id
            ).delete()
    except BaseException:
        default_storage.delete(text_name)
        raise
    if old_text_name and old_text_name != text_name:
        default_storage.delete(old_text_name)
