"""The spare extraction child under a real worker: it reads the next document, and it
does not outlive its pool process.

Each worker here has one pool process and a queue of its own, so the documents reach the
process whose children the test watches, not the session's shared worker.
"""

import uuid
import zlib
from pathlib import Path

import pytest
from celery import current_app
from django.core.files import File

from documents.models import Document
from documents.processing.extraction_child import WAITING_NAME, WORKING_NAME
from documents.services import PROCESS_TASK_TYPE
from tasks_app.models import TaskRecord
from tests.documents import samples
from tests.factories import UserFactory
from tests.integration.conftest import WorkerProcess
from tests.integration.test_hostile_documents import extraction_children
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def start_worker(transactional_db, tmp_path, request):
    """Starts a one-process worker on a queue of its own; returns it and its queue."""
    started = []

    def start(**extra_env: str) -> tuple[WorkerProcess, str]:
        queue = f"spare-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(
            log_path=tmp_path / f"worker-{len(started)}.log",
            concurrency=1,
            queues=[queue],
            extra_env=extra_env,
        )
        started.append(worker)
        worker.wait_until_ready()
        return worker, queue

    yield start
    for worker in started:
        worker.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print("---- worker log (tail) ----\n" + worker.log()[-6000:])


@pytest.fixture
def slow_pdf(tmp_path) -> Path:
    """One page of six million text operators: its child parses it for seconds."""
    content = b"BT /F1 12 Tf 72 700 Td " + b"(word) Tj " * 6_000_000 + b"ET"
    path = tmp_path / "slow.pdf"
    path.write_bytes(
        samples.pdf_with_content(zlib.compress(content, 9), filters=b"/Filter /FlateDecode")
    )
    return path


def process_on(queue: str, path: Path) -> Document:
    """A document of ``path`` whose processing task goes to ``queue`` only."""
    owner = UserFactory(username=f"spare-{uuid.uuid4().hex[:6]}")
    document = Document(owner=owner, filename=path.name, kind="pdf", size=path.stat().st_size)
    with path.open("rb") as source:
        document.source_file.save(path.name, File(source), save=False)
    document.save()
    record = TaskRecord.objects.create(
        owner=owner,
        task_type=PROCESS_TASK_TYPE,
        queue=queue,
        priority=5,
        input={"document_id": str(document.pk)},
    )
    Document.objects.filter(pk=document.pk).update(task=record)
    current_app.send_task(
        PROCESS_TASK_TYPE, args=[str(record.pk)], task_id=str(record.pk), queue=queue
    )
    return document


def is_final(document: Document) -> bool:
    document.refresh_from_db()
    return document.status in ("completed", "failed", "cancelled")


def test_the_next_document_is_read_by_the_spare_the_last_one_left(start_worker, tmp_path, slow_pdf):
    worker, queue = start_worker()
    first = process_on(queue, samples.make_pdf(tmp_path / "first.pdf", ["First document"]))
    wait_until(lambda: is_final(first), timeout=60, what="the first document to end")
    assert first.status == "completed", first.error_message
    (spare,) = wait_until(
        lambda: extraction_children(worker, name=WAITING_NAME), timeout=30, what="a spare child"
    )

    second = process_on(queue, slow_pdf)
    reading = wait_until(
        lambda: extraction_children(worker, name=WORKING_NAME),
        timeout=30,
        what="the spare to read it",
    )

    assert reading == {spare}
    wait_until(lambda: is_final(second), timeout=120, what="the second document to end")
    assert not Path(f"/proc/{spare}").exists()  # it read one document, and was reaped


def test_a_pool_process_that_exits_ends_its_spare(start_worker, slow_pdf):
    # Recycled after each task, as CELERY_WORKER_MAX_TASKS_PER_CHILD does in production.
    worker, queue = start_worker(CELERY_WORKER_MAX_TASKS_PER_CHILD="1")
    (pool_process,) = worker.pool_pids()

    document = process_on(queue, slow_pdf)
    # Started when the document took the pool process's first child.
    spares = wait_until(
        lambda: extraction_children(worker, name=WAITING_NAME), timeout=30, what="a spare child"
    )
    wait_until(lambda: is_final(document), timeout=120, what="the document to end")
    wait_until(
        lambda: worker.pool_pids() and pool_process not in worker.pool_pids(),
        timeout=30,
        what="the pool process to be replaced",
    )

    # Ended and reaped by the pool process itself: no orphan, and no zombie for init.
    assert [pid for pid in spares if Path(f"/proc/{pid}").exists()] == []


def test_a_stopped_worker_leaves_no_spare(start_worker, tmp_path):
    worker, queue = start_worker()
    document = process_on(queue, samples.make_pdf(tmp_path / "a.pdf", ["A document"]))
    wait_until(lambda: is_final(document), timeout=60, what="the document to end")
    spares = wait_until(
        lambda: extraction_children(worker, name=WAITING_NAME), timeout=30, what="a spare child"
    )

    worker.stop()  # a warm shutdown

    assert [pid for pid in spares if Path(f"/proc/{pid}").exists()] == []
