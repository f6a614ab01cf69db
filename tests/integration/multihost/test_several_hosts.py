"""Web, worker-a and worker-b on hosts of their own (network namespaces), deployed as
docs/deployment.md says, sharing only PostgreSQL, Redis and S3 over the network.

500 counting tasks and 20 documents go in through the web host's API; both workers run
them. Midway worker-a's cable is pulled for 30 s and its processes are killed. Worker-b
finishes everything: none lost (every task succeeded, every document has its text), none
run twice (each task's count is exactly 1).
"""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count
from django.utils import timezone

from documents.models import Document
from tasks_app.models import DeadLetter, DiagnosticCounter, TaskRecord
from tests.documents import samples
from tests.integration.multihost.conftest import DEPLOYED
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASKS = 500
DOCUMENTS = 20
CUT_SECONDS = 30
TASK_SECONDS = 0.05
# These tasks (by submit order) run LONG_TASK_SECONDS instead: the cable is pulled while
# worker-a runs one of them, as a short task, done in a blink, may have ended by then. They
# come just after the quarter mark, so that both workers are sure to start some.
LONG_TASKS = range(TASKS // 4 + 25, TASKS // 4 + 125, 10)
LONG_TASK_SECONDS = 2
WORKER_A, WORKER_B = "celery@worker-a", "celery@worker-b"
# A task held by worker-a is found lost after the heartbeat timeout, then requeued by the
# next reconciliation: the rest is worker-b's work, which takes it seconds.
FINISH_SECONDS = 120
FINAL = ("succeeded", "failed", "cancelled", "timed_out", "completed")


def _documents(folder: Path) -> dict[Path, str]:
    """Small real documents, half PDF and half plain text, each with a sentence of its own."""
    made = {}
    for number in range(DOCUMENTS):
        sentence = f"Document {number} of the multi-host run."
        if number % 2:
            path = samples.make_pdf(folder / f"doc-{number}.pdf", [sentence, "The second page."])
        else:
            path = samples.make_text(folder / f"doc-{number}.txt", f"{sentence}\nA second line.\n")
        made[path] = sentence
    return made


def test_worker_b_finishes_everything_when_worker_a_is_cut_off_and_killed(
    deployment, deployed, tmp_path
):
    tasks = TaskRecord.objects.using(DEPLOYED)
    documents = Document.objects.using(DEPLOYED)
    keys = [f"count-{number}" for number in range(TASKS)]
    seconds_of = {
        key: LONG_TASK_SECONDS if number in LONG_TASKS else TASK_SECONDS
        for number, key in enumerate(keys)
    }
    samples_made = _documents(tmp_path)
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        uploads = pool.map(deployed.upload, list(samples_made))
        submits = pool.map(
            lambda key: deployed.submit(
                "diagnostics.count", {"key": key, "seconds": seconds_of[key]}
            ),
            keys,
        )
        document_ids = dict(zip(uploads, samples_made.values(), strict=True))
        task_ids = list(submits)
    submitted = time.monotonic()

    long_ids = [task_id for task_id, key in zip(task_ids, keys, strict=True) if seconds_of[key] > 1]

    # Midway: both hosts have run tasks, and worker-a has just started a long one, which it
    # still runs when its cable is pulled a moment later.
    def midway():
        done = tasks.filter(pk__in=task_ids, status="succeeded")
        just_started = timezone.now() - timedelta(seconds=LONG_TASK_SECONDS / 3)
        return (
            done.count() >= TASKS // 4
            and done.filter(worker=WORKER_A).exists()
            and done.filter(worker=WORKER_B).exists()
            and tasks.filter(
                pk__in=long_ids, status="running", worker=WORKER_A, started_at__gte=just_started
            ).exists()
        )

    wait_until(
        midway, timeout=90, what="both workers to have run tasks and worker-a a long one", every=0.1
    )
    worker_a = deployment.hosts["worker-a"]
    worker_a.cut()
    cut_at, cut_clock = timezone.now(), time.monotonic()
    for process in deployment.processes:
        if process.name == "worker@worker-a":
            process.kill()
    held = {
        str(pk)
        for pk in tasks.filter(status="running", worker=WORKER_A).values_list("pk", flat=True)
    }
    assert held & set(long_ids), "worker-a was cut off without the long task it was running"
    done_at_cut = tasks.filter(pk__in=task_ids, status="succeeded").count()

    def unfinished() -> bool:
        return (
            tasks.filter(pk__in=task_ids).exclude(status__in=FINAL).exists()
            or documents.filter(pk__in=document_ids).exclude(status__in=FINAL).exists()
        )

    link_back, all_done = [], []

    def cut_for_its_time_and_everything_final():
        elapsed = time.monotonic() - cut_clock
        if elapsed >= CUT_SECONDS and not worker_a.is_connected:
            worker_a.restore()
            link_back.append(elapsed)
        if not all_done and not unfinished():
            all_done.append(elapsed)
        return link_back and all_done

    wait_until(
        cut_for_its_time_and_everything_final,
        timeout=FINISH_SECONDS,
        what="every task and document to end",
        every=0.5,
    )
    print(
        f"\n{TASKS} tasks and {DOCUMENTS} documents submitted in {submitted - began:.1f} s; "
        f"{done_at_cut} tasks done at the cut, {len(held)} held by worker-a; all done "
        f"{all_done[0]:.1f} s after the cut; the link back after {link_back[0]:.1f} s"
    )

    # None lost: every task succeeded, every document has its text.
    assert dict(tasks.filter(pk__in=task_ids).values_list("status").annotate(Count("pk"))) == {
        "succeeded": TASKS
    }
    for document_id, sentence in document_ids.items():
        body = deployed.get(f"/documents/{document_id}/")
        assert body["status"] == "completed", body
        assert sentence in deployed.text(f"/documents/{document_id}/text")
    # None run twice: each task's effect counted once, retried or not.
    counts = DiagnosticCounter.objects.using(DEPLOYED).filter(key__in=keys)
    assert dict(counts.values_list("key", "count")) == dict.fromkeys(keys, 1)
    # Both hosts took part; after the cut worker-b did everything, worker-a's tasks too.
    ran_on = dict(tasks.filter(pk__in=task_ids).values_list("worker").annotate(Count("pk")))
    assert set(ran_on) == {WORKER_A, WORKER_B} and min(ran_on.values()) > 0, ran_on
    assert not tasks.filter(worker=WORKER_A, finished_at__gte=cut_at).exists()
    held_then = tasks.filter(pk__in=held)
    assert set(held_then.values_list("status", "worker")) == {("succeeded", WORKER_B)}
    assert not held_then.filter(attempts__lt=2).exists()  # run again, from the start
    assert not DeadLetter.objects.using(DEPLOYED).exists()
