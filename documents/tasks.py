"""The task type that processes documents; started by documents.services, not by users."""

from rest_framework import serializers

from documents.file_store import FileStoreUnavailable
from documents.pipeline import document_process
from documents.processing import TransientFetchError
from documents.services import PROCESS_TASK_TYPE, document_follow_task
from tasks_app.execution import TaskContext
from tasks_app.registry import RetryPolicy, register_task_type


class ProcessInput(serializers.Serializer):
    document_id = serializers.UUIDField()


@register_task_type(
    PROCESS_TASK_TYPE,
    input_serializer=ProcessInput,
    queue="default",
    soft_time_limit=900,
    time_limit=960,
    # Only a web server or the file store that did not answer is worth another try; a bad
    # file is not.
    retry=RetryPolicy(
        retry_on=(TransientFetchError, FileStoreUnavailable), max_retries=3, backoff_seconds=5
    ),
    public=False,
    on_finished=document_follow_task,
)
def process_document(context: TaskContext, *, document_id: str) -> dict:
    """Fetch (for URLs), extract, normalize and chunk a document, reporting per page."""
    return document_process(document_id=document_id, context=context)
