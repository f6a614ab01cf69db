"""Cancelling a document while a real worker processes it: an INFO line, not an error.

A cancel is what the user asked for. The worker logs that the task stopped, Celery's
result row says REVOKED, and nothing in the worker's log looks like a failure, even when
the body ends with an error of its own after the cancel (a parser that caught the cancel
and raised its own error, as pypdf's broad ``except Exception`` blocks can).
"""

import re
import uuid

import pytest
from celery.states import READY_STATES
from django_celery_results.models import TaskResult

from tests.conftest import client_for
from tests.documents import samples
from tests.factories import UserFactory
from tests.integration.conftest import WorkerProcess, submit_to_private_queue
from tests.integration.test_documents import DOCUMENTS, poll_document, upload
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def lines_about(log: str, task_id: str) -> list[str]:
    """The log lines that name the task, or the pool process that ran it."""
    runner = re.search(rf"/(ForkPoolWorker-\d+)\] task started id={task_id}", log).group(1)
    return [
        line
        for line in log.splitlines()
        if task_id in line or f"/{runner}]" in line or f"'{runner}'" in line
    ]


def test_cancel_while_processing_ends_cancelled_and_revoked_without_an_error_logged(
    live, celery_worker, tmp_path
):
    path = tmp_path / "long.pdf"
    samples.make_pdf(path, [f"Page {n} " + "filler words " * 200 for n in range(800)])
    log_before = len(celery_worker.log())
    document = upload(live, path)
    task_id = document["task"]["id"]
    wait_until(
        lambda: live.get(f"{DOCUMENTS}{document['id']}/").json()["progress"]["current"] >= 1,
        timeout=30,
        what="processing to start",
    )

    response = live.post(f"/api/v1/tasks/{task_id}/cancel/")

    assert response.status_code == 200, response.content
    final = poll_document(live, document["id"])[-1]
    assert (final["status"], final["task"]["status"]) == ("cancelled", "cancelled")
    # The record is cancelled at once; the worker stores Celery's outcome when it stops.
    result = wait_until(
        lambda: TaskResult.objects.filter(task_id=task_id, status__in=READY_STATES).first(),
        timeout=15,
        what="a final Celery result row",
    )
    assert result.status == "REVOKED"
    wait_until(
        lambda: f"Task documents.process[{task_id}] ignored" in celery_worker.log(),
        timeout=15,
        what="the worker to finish with the task",
    )
    log = celery_worker.log()[log_before:]
    assert f"task stopped after cancel id={task_id}" in log
    # The session's worker is shared: a pool process an earlier test had killed (at its hard
    # time limit) may be reported late, inside this test's part of the log.
    about_this_task = lines_about(log, task_id)
    assert not [line for line in about_this_task if "ERROR" in line], about_this_task
    assert f"{task_id}] raised unexpected" not in log, log


@pytest.fixture
def slow_watch_worker(transactional_db, tmp_path, request):
    """A worker on a queue of its own whose watch looks at its tasks' records only every
    minute: a cancelled body runs on and ends however it ends, as one does whose library
    swallowed the interrupt."""
    queue = f"cancel-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        log_path=tmp_path / "worker.log",
        concurrency=1,
        queues=[queue],
        extra_env={"TASKS_CANCEL_CHECK_SECONDS": "60", "TASKS_HEARTBEAT_SECONDS": "60"},
    )
    worker.wait_until_ready()
    yield worker, queue
    worker.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- worker log (tail) ----\n" + worker.log()[-6000:])


def test_an_error_raised_after_the_cancel_is_logged_as_the_cancel_not_a_failure(
    slow_watch_worker,
):
    worker, queue = slow_watch_worker
    owner = UserFactory(username=f"cancel-{uuid.uuid4().hex[:6]}")
    api = client_for(owner)
    record = submit_to_private_queue(
        owner=owner,
        task_type="diagnostics.fail",
        queue=queue,
        task_input={"message": "the body's own error, after the cancel", "after_seconds": 4},
    )
    task_id = str(record.pk)
    # Past its last progress report: from here on only the watch could see the cancel.
    wait_until(
        lambda: (
            api.get(f"/api/v1/tasks/{task_id}/").json()["progress"]["message"]
            == "waiting before failing"
        ),
        timeout=30,
        what="the task to start",
    )

    assert api.post(f"/api/v1/tasks/{task_id}/cancel/").status_code == 200

    result = wait_until(
        lambda: TaskResult.objects.filter(task_id=task_id, status__in=READY_STATES).first(),
        timeout=30,
        what="a final Celery result row",
    )
    assert result.status == "REVOKED"
    assert api.get(f"/api/v1/tasks/{task_id}/").json()["status"] == "cancelled"
    log = worker.log()
    assert f"task stopped after cancel id={task_id}" in log
    assert "ERROR" not in log and "Traceback" not in log and "task failed" not in log, log
