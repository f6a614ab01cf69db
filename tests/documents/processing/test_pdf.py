import types

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pypdf import PageObject

from documents.processing import DocumentError, Page
from documents.processing.pdf import count_pages, extract_pages, open_pdf
from tests.documents import samples


def test_pages_come_back_in_order_with_their_words(tmp_path):
    path = samples.make_pdf(tmp_path / "a.pdf", ["Alpha words here", "", "Gamma à la carte"])

    pages = list(extract_pages(path))

    assert [page.number for page in pages] == [1, 2, 3]
    assert pages[0].text == "Alpha words here"
    assert pages[1].text == ""
    assert pages[2].text == "Gamma à la carte"


def test_wrapped_lines_come_back_as_lines(tmp_path):
    text = " ".join(["lorem"] * 40)  # longer than one line of the page
    path = samples.make_pdf(tmp_path / "a.pdf", [text])

    [page] = extract_pages(path)

    assert "\n" in page.text
    assert page.text.split() == text.split()


def test_pages_are_extracted_one_at_a_time(tmp_path, monkeypatch):
    path = samples.make_pdf(tmp_path / "a.pdf", ["one", "two", "three"])
    extracted = []
    original = PageObject.extract_text

    def spy(self, *args, **kwargs):
        extracted.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", spy)
    pages = extract_pages(path)

    assert isinstance(pages, types.GeneratorType)
    assert next(pages) == Page(number=1, text="one")
    assert len(extracted) == 1


def test_count_pages_counts_pages(tmp_path):
    path = samples.make_pdf(tmp_path / "a.pdf", ["a", "b", "c", "d"])
    assert count_pages(path) == 4


def test_open_pdf_gives_a_reader(tmp_path):
    path = samples.make_pdf(tmp_path / "a.pdf", ["a", "b"])
    with open_pdf(path) as reader:
        assert len(reader.pages) == 2


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_pdf_with_only_an_owner_password_is_read(tmp_path, algorithm):
    path = samples.make_encrypted_pdf(tmp_path / "a.pdf", user_password="", algorithm=algorithm)

    [page] = extract_pages(path)

    assert page.text == "Confidential words"


def test_aes_pdf_with_a_user_password_is_refused_as_password_protected(tmp_path):
    path = samples.make_encrypted_pdf(tmp_path / "a.pdf", algorithm="AES-256")
    with pytest.raises(DocumentError, match="^The PDF is password-protected"):
        list(extract_pages(path))


def test_pdf_with_a_user_password_is_refused(tmp_path):
    path = samples.make_encrypted_pdf(tmp_path / "a.pdf")
    with pytest.raises(DocumentError, match="^The PDF is password-protected; remove the"):
        list(extract_pages(path))
    with pytest.raises(DocumentError, match="password-protected"):
        count_pages(path)


def test_truncated_pdf_is_reported_as_damaged(tmp_path):
    path = samples.make_truncated_pdf(tmp_path / "a.pdf")
    with pytest.raises(DocumentError, match=r"^The PDF is damaged and cannot be read \(.+\)\.$"):
        list(extract_pages(path))


def test_garbage_after_a_pdf_header_is_reported_as_damaged(tmp_path):
    path = tmp_path / "a.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    with pytest.raises(DocumentError, match="The PDF is damaged"):
        count_pages(path)


def test_error_raised_while_reading_a_page_is_reported_as_damaged(tmp_path, monkeypatch):
    path = samples.make_pdf(tmp_path / "a.pdf", ["one", "two"])

    def broken(self, *args, **kwargs):
        raise ValueError("invalid literal for int() with base 10: b'x'")

    monkeypatch.setattr(PageObject, "extract_text", broken)
    with pytest.raises(DocumentError, match=r"damaged .*\(invalid literal for int\(\)"):
        list(extract_pages(path))


def test_soft_time_limit_is_not_mistaken_for_a_damaged_pdf(tmp_path, monkeypatch):
    path = samples.make_pdf(tmp_path / "a.pdf", ["one"])

    def out_of_time(self, *args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(PageObject, "extract_text", out_of_time)
    with pytest.raises(SoftTimeLimitExceeded):
        list(extract_pages(path))


def test_long_reasons_are_shortened(tmp_path, monkeypatch):
    path = samples.make_pdf(tmp_path / "a.pdf", ["one"])

    def verbose(self, *args, **kwargs):
        raise KeyError("x" * 500)

    monkeypatch.setattr(PageObject, "extract_text", verbose)
    with pytest.raises(DocumentError) as caught:
        list(extract_pages(path))
    assert len(str(caught.value)) < 200


def test_hyphenated_and_long_words_stay_whole_in_sample_pdfs(tmp_path):
    text = " ".join(["well-known"] * 30 + ["x" * 120] + [f"word{i}" for i in range(100)])
    path = samples.make_pdf(tmp_path / "a.pdf", [text])

    [page] = extract_pages(path)

    assert page.text.split() == text.split()
