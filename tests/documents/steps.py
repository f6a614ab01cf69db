"""What a worker does with a document's processing task, done by hand in the test's thread.

The document and its task record come from the real services; the task is claimed as a
worker claims it, and ``document_process`` runs with the real ``TaskContext``. No broker
message is ever sent: the tests' transactions do not commit, so nothing is dispatched.
"""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from documents.models import Document
from documents.services import document_upload
from tasks_app.execution import TaskContext
from tasks_app.models import TaskRecord
from tasks_app.transitions import task_claim


def upload(owner, name: str, content: bytes) -> Document:
    return document_upload(owner=owner, uploaded_file=SimpleUploadedFile(name, content))


def claimed_task(document: Document) -> TaskRecord:
    """The document's latest task, claimed (moved to running) as a worker claims it."""
    document.refresh_from_db()
    record = task_claim(task_id=str(document.task_id), worker="test")
    assert record is not None, "the task could not be claimed"
    return record


def claim(document: Document) -> TaskContext:
    """Claim the document's latest task; the context its body runs with."""
    return TaskContext(record=claimed_task(document))


class UserActsAtPage(TaskContext):
    """The real context, with a user who does something as soon as ``page`` is extracted.

    Progress is written at every report here (no interval), so the report right after the
    user's act is the one that finds the task no longer running.
    """

    PROGRESS_INTERVAL_SECONDS = 0

    def __init__(self, *, record: TaskRecord, page: int, act: Callable[[], None]):
        super().__init__(record=record)
        self._page = page
        self._act = act
        self.acted = False

    def report_progress(self, current: int, total: int | None = None, message: str = "") -> None:
        if not self.acted and message.startswith("extracted page") and current == self._page:
            self.acted = True
            self._act()
        super().report_progress(current, total, message)


def claim_and_act_at_page(document: Document, page: int, act: Callable[[], None]):
    return UserActsAtPage(record=claimed_task(document), page=page, act=act)


def scratch_folders(document_id) -> list[Path]:
    """The pipeline's scratch folders of this document that are still there."""
    if not settings.DOCUMENTS_TMP_DIR.exists():
        return []
    return list(settings.DOCUMENTS_TMP_DIR.glob(f"{document_id}-*"))
