"""The hostile corpus, each file through upload and the worker's own task entry point.

Every file must end with a clear status, in the way a user sees it over the API: refused
at upload (415), or its document completed, or failed with a readable reason; within 30 s,
with the worker process under 300 MB and the parsing child under 512 MB; and the process
goes on to the next file.
"""

import logging
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from documents.services import PROCESS_TASK_TYPE
from tasks_app.task_types import get_task_type
from tests.documents import samples
from tests.documents.hostile.corpus import CORPUS, Hostile
from tests.integration.web_server import LocalWebServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

DOCUMENTS = "/api/v1/documents/"
MIB = 2**20


@pytest.fixture(scope="module")
def web_server():
    with LocalWebServer() as server:
        yield server


@pytest.fixture(autouse=True)
def parse_limits(settings):
    # A parser that loops is stopped at this deadline, well within the 30 s allowed.
    settings.DOCUMENTS_PARSE_TIMEOUT = 20
    settings.DOCUMENTS_PARSE_MEMORY_BYTES = 512 * MIB


def submit(api, web_server, name: str, data: bytes):
    if name.endswith(".html"):
        web_server.pages[f"/{name}"] = ("text/html", data)
        return api.post(DOCUMENTS, {"url": web_server.url(f"/{name}")}, format="json")
    return api.post(DOCUMENTS, {"file": SimpleUploadedFile(name, data)}, format="multipart")


def process_as_the_worker_does(task_id: str) -> None:
    """Run the processing task's Celery entry point in this process, as a worker would."""
    get_task_type(PROCESS_TASK_TYPE).celery_task.apply(args=[task_id], task_id=task_id)


def peak_resident_bytes_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def child_peaks_mb(caplog) -> list:
    return [
        record.args[2]
        for record in caplog.records
        if record.getMessage().startswith("document extraction child ended")
    ]


def is_a_readable_reason(message: str) -> bool:
    return (
        message[:1].isupper()
        and message.endswith(".")
        and len(message) < 400
        and "Traceback" not in message
        and "\n" not in message
    )


def test_corpus_is_large_and_varied():
    assert len(CORPUS) >= 40
    assert len({hostile.name for hostile in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("hostile", CORPUS, ids=lambda hostile: hostile.name)
def test_hostile_file_ends_clearly_in_time_and_memory(
    hostile: Hostile, api, web_server, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="documents.processing.isolation")
    data = hostile.make(tmp_path / hostile.name)

    response = submit(api, web_server, hostile.name, data)

    if hostile.outcome == "refused":
        assert response.status_code == 415, response.content
        assert hostile.reason in response.json()["detail"].lower()
        return
    assert response.status_code == 202, response.content
    document = response.json()
    peak_resident_bytes_reset()
    before = peak_resident_bytes()
    started = time.monotonic()

    process_as_the_worker_does(document["task"]["id"])

    seconds = time.monotonic() - started
    worker_growth = peak_resident_bytes() - before
    final = api.get(f"{DOCUMENTS}{document['id']}/").json()
    assert final["status"] == hostile.outcome, final["error"]
    if hostile.outcome == "failed":
        assert hostile.reason in final["error"].lower(), final["error"]
        assert is_a_readable_reason(final["error"]), final["error"]
        assert final["task"]["status"] == "failed"
    assert seconds < 30
    # What processing added to this process (the worker's part); its size before is the
    # test run's, not a worker's. A real worker's total is measured in the integration
    # tests (tests/integration/test_documents.py).
    assert worker_growth < 64 * MIB
    peaks = child_peaks_mb(caplog)
    assert peaks and all(peak == "unknown" or peak < 512 for peak in peaks), peaks


def test_a_word_longer_than_a_piece_of_text_counts_once(api, web_server):
    # The child hands a long page back in pieces; this one has to be cut inside its word.
    data = b"before " + b"x" * 700_000 + b" after"

    response = submit(api, web_server, "long-word.txt", data)
    process_as_the_worker_does(response.json()["task"]["id"])

    final = api.get(f"{DOCUMENTS}{response.json()['id']}/").json()
    assert final["status"] == "completed", final["error"]
    assert (final["page_count"], final["word_count"]) == (1, 3)
    text = b"".join(api.get(f"{DOCUMENTS}{final['id']}/text").streaming_content)
    assert text == data


def test_a_plain_document_after_the_corpus_completes(api, web_server, tmp_path):
    path = samples.make_docx(tmp_path / "after.docx", [["Life goes on after the corpus."]])

    response = submit(api, web_server, path.name, path.read_bytes())
    process_as_the_worker_does(response.json()["task"]["id"])

    final = api.get(f"{DOCUMENTS}{response.json()['id']}/").json()
    assert final["status"] == "completed", final["error"]
    assert final["word_count"] == 6
