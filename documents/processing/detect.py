"""Which kind a document is, decided by its bytes; its name only has to agree."""

import codecs
import zipfile
from pathlib import PurePath
from typing import BinaryIO

import charset_normalizer

from documents.processing import DocumentKind, EmptyDocument, UnsupportedDocument

SUPPORTED_EXTENSIONS: dict[str, DocumentKind] = {
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
}

# Acrobat accepts a PDF whose header starts anywhere in the first KiB, so we do too.
_PDF_MAGIC = b"%PDF-"
_PDF_HEADER_WINDOW = 1024
_TEXT_SNIFF_BYTES = 64 * 1024
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc, .xls, .ppt
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_IMAGE_MAGICS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_DOCX_MEMBERS = {"word/document.xml", "[Content_Types].xml"}

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_MARKDOWN_TYPES = {"text/markdown", "text/x-markdown"}

# What the bytes turned out to be, in words for the error message.
_PDF = "a PDF"
_DOCX = "a Word (.docx) document"
_TEXT = "plain text"
_DAMAGED_ZIP = "a damaged or incomplete zip archive"
_ZIP = "a zip archive"
_LEGACY_OFFICE = "an old-style Office file (.doc, .xls or .ppt)"
_IMAGE = "an image"
_UNKNOWN = "of an unrecognised kind"

_EXPECTED = {
    DocumentKind.PDF: _PDF,
    DocumentKind.DOCX: _DOCX,
    DocumentKind.TEXT: _TEXT,
    DocumentKind.MARKDOWN: _TEXT,
}
_RENAME_TO = {_PDF: ".pdf", _DOCX: ".docx", _TEXT: ".txt"}


def detect_kind(fileobj: BinaryIO, *, filename: str) -> DocumentKind:
    """The kind of an uploaded file, when its extension and its bytes agree.

    The extension says which kind is claimed (and tells Markdown from plain text); the
    bytes must then be that kind. ``fileobj`` must be seekable; it is left at position 0.
    Raises ``EmptyDocument`` for a file with no bytes and ``UnsupportedDocument`` for an
    unsupported extension or bytes that are not what the extension claims.
    """
    extension = PurePath(filename).suffix.lower()
    claimed = SUPPORTED_EXTENSIONS.get(extension)
    if claimed is None:
        raise UnsupportedDocument(_unsupported_extension_message(extension))
    try:
        fileobj.seek(0)
        head = fileobj.read(_TEXT_SNIFF_BYTES)
        if not head:
            raise EmptyDocument("The file is empty.")
        content = _sniff(fileobj, head)
    finally:
        fileobj.seek(0)
    # A zip that is cut short is still recognisably the Word file it claims to be; it is
    # accepted, and processing records why it cannot be read (the upload loses nothing).
    if claimed == DocumentKind.DOCX and content == _DAMAGED_ZIP:
        return claimed
    if content != _EXPECTED[claimed]:
        raise UnsupportedDocument(_mismatch_message(extension, claimed, content))
    return claimed


def detect_web_kind(head: bytes, *, content_type: str | None) -> DocumentKind:
    """The kind of downloaded web content, from its Content-Type header and first bytes.

    Raises ``EmptyDocument`` for an empty body and ``UnsupportedDocument`` for anything
    but a web page, a PDF, plain text or Markdown.
    """
    if not head:
        raise EmptyDocument("The address returned an empty page.")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in _HTML_TYPES:
        return DocumentKind.HTML
    if _is_pdf(head):
        return DocumentKind.PDF
    if media_type == "application/pdf":
        raise UnsupportedDocument("The address says it serves a PDF, but the content is not one.")
    if _looks_like_html(head):
        return DocumentKind.HTML
    if media_type == "text/plain":
        return DocumentKind.TEXT
    if media_type in _MARKDOWN_TYPES:
        return DocumentKind.MARKDOWN
    served = f"content of type {media_type}" if media_type else "content of an unknown type"
    raise UnsupportedDocument(
        f"The address serves {served}, which is not supported. "
        "Supported are web pages (HTML), PDF, plain text and Markdown."
    )


def _sniff(fileobj: BinaryIO, head: bytes) -> str:
    if _is_pdf(head):
        return _PDF
    if head.startswith(_ZIP_MAGICS):
        return _sniff_zip(fileobj)
    if head.startswith(_OLE_MAGIC):
        return _LEGACY_OFFICE
    if _is_text(head):
        return _TEXT
    # Images are only named once text is ruled out: "GIF89a" is also a possible text start.
    if head.startswith(_IMAGE_MAGICS) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return _IMAGE
    return _UNKNOWN


def _is_pdf(head: bytes) -> bool:
    return _PDF_MAGIC in head[:_PDF_HEADER_WINDOW]


def _sniff_zip(fileobj: BinaryIO) -> str:
    try:
        # ZipFile reads the central directory at the end of the file; it does not close
        # a file object it was given.
        with zipfile.ZipFile(fileobj) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return _DAMAGED_ZIP
    return _DOCX if _DOCX_MEMBERS <= names else _ZIP


def _is_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decodes(head, "utf-16")
    if b"\x00" in head:
        return False
    # Most text is UTF-8, and checking that is cheap; ``final=False`` forgives a character
    # cut in half at the end of the head.
    if _decodes(head, "utf-8-sig"):
        return True
    return charset_normalizer.from_bytes(head).best() is not None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_html(head: bytes) -> bool:
    start = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _unsupported_extension_message(extension: str) -> str:
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    if not extension:
        return f"The file name has no extension. Supported files end in {supported}."
    return f"Files ending in {extension} are not supported. Supported files end in {supported}."


def _mismatch_message(extension: str, claimed: DocumentKind, content: str) -> str:
    message = f"The file is named {extension} but its content is not {_EXPECTED[claimed]}"
    if content == _UNKNOWN:
        return f"{message}."
    message = f"{message}; it looks like {content}."
    if content in _RENAME_TO:
        return f"{message} Rename it to {_RENAME_TO[content]} and upload it again."
    if content == _LEGACY_OFFICE:
        return f"{message} Save it as .docx or PDF and upload it again."
    return message
