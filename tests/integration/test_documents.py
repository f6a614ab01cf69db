"""Documents end to end: upload over HTTP, a real worker processes, HTTP shows the outcome."""

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import client_for
from tests.documents import samples
from tests.factories import UserFactory
from tests.integration.web_server import LocalWebServer

pytestmark = pytest.mark.integration

DOCUMENTS = "/api/v1/documents/"

LATIN1_TEXT = "Café crème für naïve façades.\nÀ bientôt, garçon — déjà vu.\n"


def upload(api, path: Path) -> dict:
    response = api.post(
        DOCUMENTS,
        {"file": SimpleUploadedFile(path.name, path.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return response.json()


def poll_document(api, document_id: str, *, timeout: float = 60.0) -> list[dict]:
    """Poll until the document is final; return every body seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"{DOCUMENTS}{document_id}/")
        assert response.status_code == 200
        seen.append(response.json())
        # The document's status is stored just before its task records that it finished.
        task_status = (seen[-1]["task"] or {}).get("status")
        if seen[-1]["status"] in ("completed", "failed", "cancelled") and task_status not in (
            "queued",
            "running",
            "retrying",
        ):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"document not finished; last seen: {seen[-1]}")


def assert_scratch_space_emptied(timeout: float = 15.0) -> None:
    """Processing removes its scratch folder on every way out, failures and cancels too."""
    scratch = settings.DOCUMENTS_TMP_DIR
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not scratch.exists() or not any(scratch.iterdir()):
            return
        time.sleep(0.1)
    raise AssertionError(f"left in scratch space: {sorted(p.name for p in scratch.iterdir())}")


def document_text(api, document_id: str) -> str:
    response = api.get(f"{DOCUMENTS}{document_id}/text")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return b"".join(response.streaming_content).decode()


def all_chunks(api, document_id: str) -> list[dict]:
    chunks, url = [], f"{DOCUMENTS}{document_id}/chunks"
    while url:
        page = api.get(url).json()
        chunks += page["results"]
        url = page["next"]
    return chunks


def test_multi_page_pdf_is_processed_with_rising_progress(live, tmp_path):
    pages = [
        f"Page {n} is about topic{n}. " + " ".join(f"word{n}x{i}" for i in range(150))
        for n in range(1, 101)
    ]
    path = tmp_path / "report.pdf"
    samples.make_pdf(path, pages)

    document = upload(live, path)
    seen = poll_document(live, document["id"])

    final = seen[-1]
    assert final["status"] == "completed", final["error"]
    assert final["page_count"] == 100
    assert final["word_count"] == sum(len(page.split()) for page in pages)
    chunks = all_chunks(live, document["id"])
    assert final["chunk_count"] == len(chunks) > 100
    text = document_text(live, document["id"])
    assert "Page 17 is about topic17." in text
    for chunk in chunks:
        assert text[chunk["start"] : chunk["end"]] == chunk["text"]
    assert chunks[-1]["page_end"] == 100
    progress = [body["progress"]["current"] for body in seen if body["status"] == "processing"]
    assert any(0 < current < 100 for current in progress), progress
    assert progress == sorted(progress)
    assert final["task"]["status"] == "succeeded"


def test_docx_is_processed_with_its_pages_and_words(live, tmp_path):
    pages = [
        ["Introduction to the plan.", "It has two paragraphs."],
        ["Second page with a single paragraph."],
        ["Third page.", "Closing words here."],
    ]
    path = tmp_path / "plan.docx"
    samples.make_docx(path, pages)

    final = poll_document(live, upload(live, path)["id"])[-1]

    assert final["status"] == "completed", final["error"]
    assert final["kind"] == "docx"
    assert final["page_count"] == 3
    assert final["word_count"] == sum(len(p.split()) for page in pages for p in page)
    text = document_text(live, final["id"])
    assert "Second page with a single paragraph." in text


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_text_in_utf8_and_latin1_is_decoded(live, tmp_path, encoding):
    path = tmp_path / f"notes-{encoding}.txt"
    samples.make_text(path, LATIN1_TEXT * 20, encoding)

    final = poll_document(live, upload(live, path)["id"])[-1]

    assert final["status"] == "completed", final["error"]
    text = document_text(live, final["id"])
    assert "Café crème für naïve façades." in text
    assert "À bientôt, garçon — déjà vu." in text if encoding == "utf-8" else "déjà vu" in text


@pytest.mark.parametrize(
    "maker, name, reason",
    [
        (samples.make_encrypted_pdf, "locked.pdf", "password"),
        (samples.make_truncated_pdf, "broken.pdf", "damaged"),
        (samples.make_truncated_docx, "broken.docx", "damaged"),
        (samples.make_zip_bomb_docx, "bomb.docx", "too large"),
    ],
)
def test_bad_documents_end_failed_with_a_reason(live, tmp_path, maker, name, reason):
    path = tmp_path / name
    maker(path)

    final = poll_document(live, upload(live, path)["id"])[-1]

    assert final["status"] == "failed"
    assert reason in final["error"].lower(), final["error"]
    assert final["task"]["status"] == "failed"
    task = live.get(final["task"]["poll"]).json()
    assert task["attempts"] == 1  # permanent: not retried
    assert_scratch_space_emptied()


def test_text_in_an_unknown_encoding_ends_failed(live, tmp_path):
    path = tmp_path / "garbled.txt"
    path.write_bytes(bytes(range(128, 256)) * 40)

    response = live.post(
        DOCUMENTS, {"file": SimpleUploadedFile(path.name, path.read_bytes())}, format="multipart"
    )

    if response.status_code == 415:  # refused at upload already: also a clear answer
        assert response.json()["detail"]
        return
    final = poll_document(live, response.json()["id"])[-1]
    assert final["status"] == "failed"
    assert "encoding" in final["error"].lower()


def test_search_finds_a_phrase_in_the_right_document_only_for_its_owner(live, tmp_path):
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    samples.make_text(first, "The migration of arctic terns is remarkable.\n" * 3, "utf-8")
    samples.make_text(second, "Quarterly revenue grew in the northern region.\n" * 3, "utf-8")
    ids = [upload(live, path)["id"] for path in (first, second)]
    for document_id in ids:
        assert poll_document(live, document_id)[-1]["status"] == "completed"

    found = live.get(f"{DOCUMENTS}search", {"q": "arctic terns"}).json()["results"]
    stranger = client_for(UserFactory(username="stranger"))
    not_found = stranger.get(f"{DOCUMENTS}search", {"q": "arctic terns"}).json()["results"]

    assert {row["document"]["id"] for row in found} == {ids[0]}
    assert "<mark>" in found[0]["snippet"]
    assert not_found == []


def test_reprocess_replaces_derived_data(live, tmp_path):
    path = tmp_path / "again.txt"
    samples.make_text(path, "Reprocessing keeps one set of chunks.\n", "utf-8")
    document = upload(live, path)
    first = poll_document(live, document["id"])[-1]

    response = live.post(f"{DOCUMENTS}{document['id']}/reprocess")
    second = poll_document(live, document["id"])[-1]

    assert response.status_code == 202
    assert second["status"] == "completed"
    assert second["task"]["id"] != first["task"]["id"]
    assert len(all_chunks(live, document["id"])) == second["chunk_count"] == first["chunk_count"]


def test_delete_while_processing_cancels_and_removes(live, tmp_path):
    path = tmp_path / "long.pdf"
    samples.make_pdf(path, [f"Page {n} " + "filler words " * 200 for n in range(800)])
    document = upload(live, path)
    deadline = time.monotonic() + 30
    while live.get(f"{DOCUMENTS}{document['id']}/").json()["progress"]["current"] < 1:
        assert time.monotonic() < deadline, "processing did not start"
        time.sleep(0.05)

    response = live.delete(f"{DOCUMENTS}{document['id']}/")

    assert response.status_code == 204
    assert live.get(f"{DOCUMENTS}{document['id']}/").status_code == 404
    task = live.get(document["task"]["poll"]).json()
    assert task["status"] == "cancelled"
    assert_scratch_space_emptied()


def test_web_page_is_fetched_by_the_worker(live):
    with LocalWebServer() as server:
        server.pages["/guide.html"] = (
            "text/html",
            b"<html><head><title>Field guide</title><script>var x=1;</script></head>"
            b"<body><h1>Herons</h1><p>Herons wade in shallow water.</p></body></html>",
        )
        response = live.post(DOCUMENTS, {"url": server.url("/guide.html")}, format="json")
        assert response.status_code == 202, response.content
        final = poll_document(live, response.json()["id"])[-1]

    assert final["status"] == "completed", final["error"]
    assert final["kind"] == "html"
    text = document_text(live, final["id"])
    assert "Herons wade in shallow water." in text
    assert "var x" not in text


def test_redirect_to_a_private_address_is_refused_by_the_worker(live):
    with LocalWebServer() as server:
        server.redirects["/go"] = "http://127.0.0.1:9/secret"
        response = live.post(DOCUMENTS, {"url": server.url("/go")}, format="json")
        final = poll_document(live, response.json()["id"])[-1]

    assert final["status"] == "failed"
    assert "not allowed" in final["error"].lower() or "private" in final["error"].lower()


def test_web_server_that_is_briefly_unavailable_is_retried(live):
    with LocalWebServer() as server:
        server.pages["/busy.txt"] = ("text/plain", b"Patience pays off in the end.")
        server.unavailable["/busy.txt"] = 1
        response = live.post(DOCUMENTS, {"url": server.url("/busy.txt")}, format="json")
        final = poll_document(live, response.json()["id"])[-1]

    assert final["status"] == "completed", final["error"]
    assert server.requests.count("/busy.txt") == 2
    assert live.get(final["task"]["poll"]).json()["attempts"] == 2
