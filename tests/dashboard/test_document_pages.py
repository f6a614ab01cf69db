"""The documents pages through Django's test client, as a browser without JavaScript (and
the upload script's JSON requests) meet them."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from documents.models import Document, DocumentStatus
from documents.pipeline import document_process
from tests.documents import samples
from tests.documents.steps import claim, upload
from tests.factories import UserFactory


def _text(response) -> str:
    return response.content.decode()


@pytest.fixture
def pdf_bytes(tmp_path) -> bytes:
    pages = ["Quarterly revenue grew <fast> & well", "Second page of the report"]
    return samples.make_pdf(tmp_path / "report.pdf", pages).read_bytes()


@pytest.fixture
def completed(user, pdf_bytes) -> Document:
    document = upload(user, "report.pdf", pdf_bytes)
    document_process(document_id=str(document.pk), context=claim(document))
    document.refresh_from_db()
    assert document.status == DocumentStatus.COMPLETED
    return document


def test_the_list_shows_status_and_counts_and_follows_unfinished_ones_live(
    browser, user, completed, pdf_bytes
):
    queued = upload(user, "later.pdf", pdf_bytes)

    page = _text(browser.get("/documents/"))

    row = re.search(rf'<tr id="document-{completed.pk}".*?</tr>', page, re.S)[0]
    assert "Completed" in row and "report.pdf" in row
    assert f"<td>{completed.page_count}</td>" in row and f"<td>{completed.chunk_count}</td>" in row
    assert f'id="document-{queued.pk}"' in page
    assert 'hx-trigger="task-changed from:body"' in page  # the queued one may still move
    assert 'type="file" multiple' in page


def test_a_form_post_uploads_every_file_and_answers_with_the_list(browser, user, pdf_bytes):
    files = [
        SimpleUploadedFile("a.pdf", pdf_bytes, content_type="application/pdf"),
        SimpleUploadedFile("b.txt", b"plain words", content_type="text/plain"),
    ]

    response = browser.post("/documents/", {"files": files}, follow=True)

    assert response.redirect_chain == [("/documents/", 302)]
    names = set(Document.objects.filter(owner=user).values_list("filename", flat=True))
    assert names == {"a.pdf", "b.txt"}
    assert "“a.pdf” is uploaded and queued." in _text(response)


def test_a_file_it_cannot_read_is_named_with_the_reason_and_the_others_go_in(
    browser, user, pdf_bytes
):
    files = [
        SimpleUploadedFile("a.pdf", pdf_bytes),
        SimpleUploadedFile("fake.pdf", b"not a pdf at all"),
        SimpleUploadedFile("empty.txt", b""),
    ]

    response = browser.post("/documents/", {"files": files}, HTTP_ACCEPT="application/json")

    assert response.status_code in (400, 415)
    answer = response.json()
    assert [document["filename"] for document in answer["documents"]] == ["a.pdf"]
    assert len(answer["problems"]) == 2
    assert answer["problems"][0].startswith("fake.pdf: ")
    assert answer["problems"][1] == "empty.txt: The file is empty."
    assert Document.objects.filter(owner=user).count() == 1


def test_the_upload_script_gets_json_with_the_new_documents_id(browser, user, pdf_bytes):
    response = browser.post(
        "/documents/",
        {"files": SimpleUploadedFile("one.pdf", pdf_bytes)},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 201
    (document,) = response.json()["documents"]
    assert Document.objects.get(pk=document["id"]).owner == user


def test_a_file_past_the_upload_limit_is_refused_before_it_is_stored(
    browser, user, settings, pdf_bytes
):
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 2**20
    big = SimpleUploadedFile("big.txt", b"x" * 2**21)

    response = browser.post("/documents/", {"files": big}, HTTP_ACCEPT="application/json")

    assert response.status_code == 413
    assert response.json()["problems"] == ["The file is larger than the upload limit of 1 MB."]
    assert not Document.objects.exists()


def test_a_file_past_the_limit_is_a_413_also_when_the_csrf_check_reads_it(user, settings):
    settings.DOCUMENTS_MAX_UPLOAD_BYTES = 2**20
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = client.get("/documents/").context["csrf_token"]

    big = SimpleUploadedFile("big.txt", b"x" * 2**21)
    response = client.post(
        "/documents/",
        {"files": big, "csrfmiddlewaretoken": str(token)},
        HTTP_ACCEPT="application/json",
    )
    small = SimpleUploadedFile("small.txt", b"a few words")
    accepted = client.post(
        "/documents/",
        {"files": small, "csrfmiddlewaretoken": str(token)},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 413
    assert accepted.status_code == 201
    assert list(Document.objects.values_list("filename", flat=True)) == ["small.txt"]


def test_an_upload_without_a_file_says_so(browser):
    response = browser.post("/documents/", {}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert response.json()["problems"] == ["Choose a file to upload."]


def test_an_upload_without_the_csrf_token_is_refused(user, pdf_bytes):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/documents/", {"files": SimpleUploadedFile("a.pdf", pdf_bytes)})

    assert response.status_code == 403
    assert not Document.objects.exists()


def test_the_detail_shows_the_text_the_chunks_and_the_actions(browser, completed):
    page = _text(browser.get(f"/documents/{completed.pk}/"))

    assert "Quarterly revenue grew &lt;fast&gt; &amp; well" in page  # escaped
    assert 'id="chunk-0"' in page
    assert f'action="/documents/{completed.pk}/reprocess/"' in page
    assert f'action="/documents/{completed.pk}/delete/"' in page
    assert "hx-trigger" not in page  # completed: nothing moves


def test_reprocess_queues_it_again_and_delete_removes_it(browser, user, completed):
    response = browser.post(f"/documents/{completed.pk}/reprocess/", follow=True)
    completed.refresh_from_db()
    assert completed.status == DocumentStatus.QUEUED
    assert "is queued to be processed again" in _text(response)

    again = browser.post(f"/documents/{completed.pk}/reprocess/", follow=True)
    assert "wait until it has finished" in _text(again)  # still queued: refused, said why

    response = browser.post(f"/documents/{completed.pk}/delete/", follow=True)
    assert response.redirect_chain == [("/documents/", 302)]
    assert not Document.objects.filter(pk=completed.pk).exists()


def test_another_users_document_is_a_404_everywhere(completed):
    stranger = Client()
    stranger.force_login(UserFactory(username="stranger"))

    assert stranger.get(f"/documents/{completed.pk}/").status_code == 404
    assert stranger.post(f"/documents/{completed.pk}/reprocess/").status_code == 404
    assert stranger.post(f"/documents/{completed.pk}/delete/").status_code == 404
    assert "report.pdf" not in _text(stranger.get("/documents/"))
    assert "No matches" in _text(stranger.get("/documents/search/", {"q": "revenue"}))
    assert Document.objects.filter(pk=completed.pk).exists()


def test_search_shows_each_match_highlighted_and_the_rest_escaped(browser, completed):
    page = _text(browser.get("/documents/search/", {"q": "revenue"}))

    assert "<mark>revenue</mark>" in page
    # Never as markup: escaped (SQLite's snippet), or left out as a tag (PostgreSQL's).
    assert "<fast>" not in page and "&amp; well" in page
    assert f'href="/documents/{completed.pk}/#chunk-0"' in page


def test_a_search_longer_than_the_limit_is_a_400_with_the_reason(browser):
    response = browser.get("/documents/search/", {"q": "x" * 501})

    assert response.status_code == 400
    assert "at most 500 characters" in _text(response)


def test_document_pages_need_a_sign_in(client):
    response = client.get("/documents/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
