"""Pure document processing: plain files and values in, text and chunks out.

Nothing here touches Django models or Celery, so every step is tested directly. The
modules, one job each:

    detect    which kind a file is, from its bytes (the name only has to agree)
    pdf       PDF pages (pypdf), one page at a time
    docx      Word text, split into pages at explicit page breaks, parsed as it is unpacked
    safe_zip  members of an untrusted zip, unpacked with their real sizes counted
    text      plain text and Markdown, with charset detection, decoded as a stream
    html      web pages (for URL ingestion), parsed without building a tree
    normalize one form for all extracted text, also for pages that come in fragments
    isolation extraction in a child process with memory and time limits; the child's
              side is extraction_child
    chunking  overlapping chunks with their offsets, fed page by page
    addresses whether a URL, and every address its host resolves to, may be fetched
    fetch     downloading a web page without reaching private addresses, redirects and all;
              it connects with pinned_connection (to the checked address, within one
              deadline) and reads the body with response_body (bounded, named)

Errors a user must read are ``DocumentError``s: their message says what is wrong with
the document, in plain words. ``TransientFetchError`` is the one error worth a retry.
"""

from dataclasses import dataclass
from enum import StrEnum

from api.errors import DomainError
from tasks_app.errors import TransientTaskError


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


class DocumentError(Exception):
    """The document cannot be processed. Permanent: retrying gives the same answer."""


class UnsupportedDocument(DocumentError, DomainError):
    """Not a kind we process, or the bytes do not match the file's extension."""

    http_status = 415


class EmptyDocument(DocumentError, DomainError):
    """The file has no bytes at all."""

    http_status = 400


class UrlNotAllowed(DocumentError, DomainError):
    """The URL's scheme, or an address it resolves or redirects to, is not allowed."""

    # Answered as a validation error of the submitted ``url``.
    field = "url"


class TransientFetchError(TransientTaskError):
    """Fetching a URL failed in a way that may pass: a timeout, a reset, a 5xx or 429."""


@dataclass(frozen=True)
class Page:
    """Raw text of a page, as an extractor yields it.

    A long page may come as several consecutive ``Page`` fragments with the same number,
    so that no extractor holds a whole long page; its text is their texts joined.
    """

    number: int  # 1-based
    text: str


@dataclass(frozen=True)
class PagePiece:
    """Normalized text of a page, or of a part of one: a long page comes in pieces.

    A page's pieces come in order, the first with ``first`` set; its normalized text is
    their texts joined.
    """

    number: int
    text: str
    first: bool


@dataclass(frozen=True)
class Chunk:
    index: int  # 0-based, in document order
    text: str
    start: int  # character offsets into the document's full normalized text
    end: int
    page_start: int
    page_end: int
