"""Hostile and huge documents under a real worker: the pool process stays small and alive.

Parsing happens in a child of the pool process (documents/processing/isolation.py);
these tests prove it works inside Celery's daemonic prefork pool, that a cancel reaches
and kills the child, and that no child outlives its task (a pool process keeps one more,
waiting for the next document: documents/processing/spare.py).
"""

import random
import time
import zlib
from pathlib import Path

import pytest

from documents.processing.extraction_child import WAITING_NAME, WORKING_NAME
from tests.documents import samples
from tests.integration.processes import child_pids
from tests.integration.test_documents import (
    DOCUMENTS,
    assert_scratch_space_emptied,
    poll_document,
    upload,
)

pytestmark = pytest.mark.integration

MIB = 2**20


def extraction_children(worker, *, name: str | None = None) -> set[int]:
    """Living extraction children of the worker's pool processes (called ``name``, if given).

    A pool process keeps one child waiting for its next document (a spare, named
    WAITING_NAME); the children here are those at work unless ``name`` says otherwise.
    """
    return {
        pid
        for pool_pid in worker.pool_pids()
        for pid in child_pids(pool_pid)
        if b"documents.processing.extraction_child" in _command(pid)
        and (_name(pid) == name if name else _name(pid) != WAITING_NAME)
    }


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def assert_no_extraction_child_left(worker, timeout: float = 10.0) -> None:
    """No child is left at work (a spare waiting for the next document may be)."""
    deadline = time.monotonic() + timeout
    while extraction_children(worker):
        assert time.monotonic() < deadline, f"left running: {extraction_children(worker)}"
        time.sleep(0.1)


def peak_resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_largest_accepted_text_leaves_the_pool_process_under_300_mb(
    live, celery_worker, tmp_path, settings
):
    # Issue 8: a .txt within the size limits took the worker to 0.8 GB.
    line = "Plain words of a very long report, line after line, about nothing at all.\n"
    path = tmp_path / "huge.txt"
    path.write_bytes(line.encode() * (settings.DOCUMENTS_MAX_UPLOAD_BYTES // len(line) - 1))

    final = poll_document(live, upload(live, path)["id"], timeout=180)[-1]

    assert final["status"] == "completed", final["error"]
    assert final["word_count"] == len(line.split()) * (
        settings.DOCUMENTS_MAX_UPLOAD_BYTES // len(line) - 1
    )
    peaks = [peak_resident_bytes(pid) for pid in celery_worker.pool_pids()]
    assert max(peaks) < 300 * MIB, [peak // MIB for peak in peaks]
    assert_no_extraction_child_left(celery_worker)


def test_large_word_file_leaves_the_pool_process_under_300_mb(live, celery_worker, tmp_path):
    # Issue 8: a .docx within the size limits took the worker to 1.1 GB.
    vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "omega", "sigma", "kappa"]
    words = random.Random(0).choices(vocabulary, k=12_000_000)
    paragraphs = [" ".join(words[start : start + 100]) for start in range(0, len(words), 100)]
    members = samples.word_package(b"")
    members[2] = samples.zip_member(
        "word/document.xml", samples.word_xml(samples.word_paragraphs(paragraphs)), level=1
    )
    path = samples.write_zip(tmp_path / "huge.docx", members)

    final = poll_document(live, upload(live, path)["id"], timeout=180)[-1]

    assert final["status"] == "completed", final["error"]
    assert final["word_count"] == len(words)
    peaks = [peak_resident_bytes(pid) for pid in celery_worker.pool_pids()]
    assert max(peaks) < 300 * MIB, [peak // MIB for peak in peaks]
    assert_no_extraction_child_left(celery_worker)


def test_hostile_word_file_fails_and_the_next_document_completes(live, celery_worker, tmp_path):
    bomb = samples.make_under_declared_docx(tmp_path / "bomb.docx", real_bytes=2**30)
    plain = samples.make_docx(tmp_path / "plain.docx", [["The worker is still here."]])

    failed = poll_document(live, upload(live, bomb)["id"])[-1]
    completed = poll_document(live, upload(live, plain)["id"])[-1]

    assert failed["status"] == "failed"
    assert "holds more bytes than its zip directory declares" in failed["error"]
    assert completed["status"] == "completed", completed["error"]
    assert_no_extraction_child_left(celery_worker)
    assert_scratch_space_emptied()


def test_delete_while_the_child_parses_kills_the_child(live, celery_worker, tmp_path):
    # One page of six million text operators: the child parses for seconds without a page.
    content = b"BT /F1 12 Tf 72 700 Td " + b"(word) Tj " * 6_000_000 + b"ET"
    path = tmp_path / "slow.pdf"
    path.write_bytes(
        samples.pdf_with_content(zlib.compress(content, 9), filters=b"/Filter /FlateDecode")
    )
    document = upload(live, path)
    deadline = time.monotonic() + 30
    while not extraction_children(celery_worker, name=WORKING_NAME):
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)

    response = live.delete(f"{DOCUMENTS}{document['id']}/")

    assert response.status_code == 204
    assert_no_extraction_child_left(celery_worker, timeout=5)
    task = live.get(document["task"]["poll"]).json()
    assert task["status"] == "cancelled"
    assert_scratch_space_emptied()
