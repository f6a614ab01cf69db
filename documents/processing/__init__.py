"""Pure document processing: plain files and values in, text and chunks out.

Nothing here touches Django models or Celery, so every step is tested directly. The
modules, one job each:

    detect    which kind a file is, from its bytes (the name only has to agree)
    pdf       PDF pages (pypdf), one page at a time
    docx      Word text (python-docx), split into pages at explicit page breaks
    text      plain text and Markdown, with charset detection
    html      web pages (for URL ingestion)
    normalize one form for all extracted text
    chunking  overlapping chunks with their offsets, fed page by page
    addresses whether a URL, and every address its host resolves to, may be fetched
    fetch     downloading a web page without reaching private addresses

Errors a user must read are ``DocumentError``s: their message says what is wrong with
the document, in plain words. ``TransientFetchError`` is the one error worth a retry.
"""

from dataclasses import dataclass
from enum import StrEnum

from tasks_app.errors import TransientTaskError


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


class DocumentError(Exception):
    """The document cannot be processed. Permanent: retrying gives the same answer."""


class UnsupportedDocument(DocumentError):
    """Not a kind we process, or the bytes do not match the file's extension."""


class EmptyDocument(DocumentError):
    """The file has no bytes at all."""


class UrlNotAllowed(DocumentError):
    """The URL's scheme, or an address it resolves or redirects to, is not allowed."""


class TransientFetchError(TransientTaskError):
    """Fetching a URL failed in a way that may pass: a timeout, a reset, a 5xx or 429."""


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    text: str


@dataclass(frozen=True)
class Chunk:
    index: int  # 0-based, in document order
    text: str
    start: int  # character offsets into the document's full normalized text
    end: int
    page_start: int
    page_end: int
