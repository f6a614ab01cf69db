import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from documents.processing import DocumentKind, EmptyDocument, UnsupportedDocument
from documents.processing.detect import detect_kind, detect_web_kind
from tests.documents import samples

LATIN1_TEXT = "Café crème, garçon, naïve résumé façade.\n" * 3


def detect_file(path, *, filename=None):
    with open(path, "rb") as fileobj:
        return detect_kind(fileobj, filename=filename or path.name)


def detect_bytes(data: bytes, *, filename: str):
    return detect_kind(io.BytesIO(data), filename=filename)


def test_pdf_named_pdf_is_pdf(tmp_path):
    assert detect_file(samples.make_pdf(tmp_path / "a.pdf", ["Hello"])) == DocumentKind.PDF


def test_pdf_header_after_leading_junk_is_still_a_pdf():
    assert detect_bytes(b"\n\n junk %PDF-1.4\n...", filename="a.pdf") == DocumentKind.PDF


def test_docx_named_docx_is_docx(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["Hello"]])
    assert detect_file(path) == DocumentKind.DOCX


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("notes.txt", DocumentKind.TEXT),
        ("notes.text", DocumentKind.TEXT),
        ("README.md", DocumentKind.MARKDOWN),
        ("README.markdown", DocumentKind.MARKDOWN),
        ("SHOUTING.TXT", DocumentKind.TEXT),
        ("Shouting.MD", DocumentKind.MARKDOWN),
    ],
)
def test_extension_tells_text_from_markdown(filename, kind):
    assert detect_bytes(b"# Title\n\nSome words.\n", filename=filename) == kind


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])
def test_text_in_common_encodings_is_text(encoding):
    data = LATIN1_TEXT.encode(encoding)
    assert detect_bytes(data, filename="a.txt") == DocumentKind.TEXT


def test_text_whose_sniffed_head_ends_inside_a_character_is_text():
    data = ("é" * 40_000).encode()  # 80 KB; the 64 KiB head ends on a whole character...
    assert detect_bytes(data[1:], filename="a.txt") == DocumentKind.TEXT  # ...and now not


@pytest.mark.parametrize("upload_class", [SimpleUploadedFile, TemporaryUploadedFile])
def test_django_uploaded_files_are_detected(tmp_path, upload_class):
    data = samples.make_docx(tmp_path / "a.docx", [["Hello"]]).read_bytes()
    if upload_class is SimpleUploadedFile:
        upload = SimpleUploadedFile("a.docx", data)
    else:
        upload = TemporaryUploadedFile("a.docx", "application/octet-stream", len(data), None)
        upload.write(data)

    assert detect_kind(upload, filename="a.docx") == DocumentKind.DOCX
    assert upload.read() == data


def test_detection_leaves_the_file_at_its_start():
    fileobj = io.BytesIO(b"some text")
    fileobj.seek(4)
    detect_kind(fileobj, filename="a.txt")
    assert fileobj.tell() == 0


def test_detection_leaves_the_file_at_its_start_when_it_fails():
    fileobj = io.BytesIO(b"some text")
    with pytest.raises(UnsupportedDocument):
        detect_kind(fileobj, filename="a.pdf")
    assert fileobj.tell() == 0


def test_empty_file_is_empty():
    with pytest.raises(EmptyDocument, match="The file is empty"):
        detect_bytes(b"", filename="a.txt")


def test_unsupported_extension_lists_the_supported_ones():
    with pytest.raises(UnsupportedDocument) as caught:
        detect_bytes(b"MZ\x90\x00", filename="setup.exe")
    message = str(caught.value)
    assert message.startswith("Files ending in .exe are not supported.")
    for extension in (".pdf", ".docx", ".txt", ".text", ".md", ".markdown"):
        assert extension in message


def test_file_without_extension_is_unsupported():
    with pytest.raises(UnsupportedDocument, match="The file name has no extension"):
        detect_bytes(b"text", filename="README")


def test_text_named_pdf_is_refused_with_a_hint_to_rename():
    with pytest.raises(UnsupportedDocument) as caught:
        detect_bytes(b"Just some words.\n", filename="report.pdf")
    assert str(caught.value) == (
        "The file is named .pdf but its content is not a PDF; it looks like plain text. "
        "Rename it to .txt and upload it again."
    )


def test_pdf_named_txt_is_refused(tmp_path):
    path = samples.make_pdf(tmp_path / "a.pdf", ["Hello"])
    with pytest.raises(UnsupportedDocument, match=r"named \.txt .* it looks like a PDF"):
        detect_file(path, filename="a.txt")


def test_docx_named_md_is_refused(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["Hello"]])
    with pytest.raises(UnsupportedDocument, match=r"looks like a Word \(\.docx\) document"):
        detect_file(path, filename="a.md")


def test_legacy_word_file_is_refused_with_a_hint_to_convert():
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    with pytest.raises(UnsupportedDocument, match="old-style Office file.*Save it as .docx"):
        detect_bytes(ole, filename="letter.docx")


def test_image_named_pdf_is_refused():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
    with pytest.raises(UnsupportedDocument, match="not a PDF; it looks like an image"):
        detect_bytes(png, filename="scan.pdf")


def test_zip_without_word_document_named_docx_is_refused():
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnsupportedDocument, match="not a Word .* it looks like a zip archive"):
        detect_bytes(data.getvalue(), filename="a.docx")


def test_truncated_docx_is_accepted_for_processing_to_report(tmp_path):
    # Processing fails it with a reason the user can read (documents.processing.docx).
    path = samples.make_truncated_docx(tmp_path / "a.docx")
    assert detect_file(path) == DocumentKind.DOCX


def test_binary_bytes_named_txt_are_refused():
    with pytest.raises(UnsupportedDocument, match=r"^The file is named \.txt but .* text\.$"):
        detect_bytes(bytes(range(256)) * 4, filename="a.txt")


@pytest.mark.parametrize(
    "content_type", ["text/html", "text/html; charset=utf-8", "application/xhtml+xml"]
)
def test_web_content_declared_html_is_html(content_type):
    assert detect_web_kind(b"<p>hi</p>", content_type=content_type) == DocumentKind.HTML


@pytest.mark.parametrize(
    "head", [b"<!DOCTYPE html><html>", b"\xef\xbb\xbf\n  <html lang='en'>", b"<HTML>"]
)
@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain"])
def test_web_content_that_starts_like_html_is_html(head, content_type):
    assert detect_web_kind(head, content_type=content_type) == DocumentKind.HTML


@pytest.mark.parametrize("content_type", ["application/pdf", "application/octet-stream", None])
def test_web_content_that_starts_like_a_pdf_is_a_pdf(content_type):
    assert detect_web_kind(b"%PDF-1.7\n", content_type=content_type) == DocumentKind.PDF


def test_web_content_declared_pdf_that_is_not_one_is_refused():
    with pytest.raises(UnsupportedDocument, match="says it serves a PDF"):
        detect_web_kind(b"Not found", content_type="application/pdf")


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/plain; charset=utf-8", DocumentKind.TEXT),
        ("text/markdown", DocumentKind.MARKDOWN),
        ("text/x-markdown", DocumentKind.MARKDOWN),
    ],
)
def test_web_content_declared_text_or_markdown_is_that(content_type, kind):
    assert detect_web_kind(b"# Notes\nwords", content_type=content_type) == kind


@pytest.mark.parametrize(
    ("content_type", "words"),
    [("image/png", "content of type image/png"), (None, "content of an unknown type")],
)
def test_other_web_content_is_refused(content_type, words):
    with pytest.raises(UnsupportedDocument, match=words):
        detect_web_kind(b"\x89PNG\r\n", content_type=content_type)


def test_empty_web_content_is_empty():
    with pytest.raises(EmptyDocument):
        detect_web_kind(b"", content_type="text/html")
