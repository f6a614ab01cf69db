"""PDF text, one page at a time, with pypdf."""

import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PyPdfError

from documents.processing import DocumentError, Page

# What pypdf raises on a damaged file: its own errors, and whatever Python raises while it
# parses garbage. Deliberately not ``Exception``: Celery's SoftTimeLimitExceeded is an
# Exception and must reach the task; so must MemoryError and KeyboardInterrupt.
_READ_ERRORS = (
    PyPdfError,
    ValueError,  # includes UnicodeDecodeError and binascii.Error
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ArithmeticError,
    AssertionError,
    RuntimeError,  # includes RecursionError and NotImplementedError (an unknown filter)
    EOFError,
    OSError,  # a seek before the start of the file
    struct.error,
    zlib.error,
)
_REASON_MAX_CHARS = 120


@contextmanager
def open_pdf(path: Path) -> Iterator[PdfReader]:
    """A reader for the PDF at ``path``, decrypted if it only has an owner password.

    The file stays open (pypdf reads pages from it lazily) until the block ends. Raises
    ``DocumentError`` for a password-protected or damaged PDF.
    """
    with open(path, "rb") as stream:
        with _read_errors_as_document_error():
            reader = PdfReader(stream)
            if reader.is_encrypted:
                _decrypt(reader)
        yield reader


def extract_pages(
    path: Path, *, on_page_count: Callable[[int], None] | None = None
) -> Iterator[Page]:
    """The text of each page, in order, read from the file as it is asked for.

    Only one page's text is held; pypdf itself caches the objects it has parsed (about
    10 KB a page of plain text). The text is as pypdf gives it: normalise it before
    chunking. ``on_page_count`` hears the number of pages before the first page comes,
    so a caller can report progress without opening the file twice.
    """
    with open_pdf(path) as reader:
        with _read_errors_as_document_error():
            count = len(reader.pages)
        if on_page_count is not None:
            on_page_count(count)
        for index in range(count):
            with _read_errors_as_document_error():
                text = reader.pages[index].extract_text()
            # Yield outside the error translation, so that errors raised by the consumer
            # into this generator are not mistaken for a damaged PDF.
            yield Page(number=index + 1, text=text)


def count_pages(path: Path) -> int:
    """How many pages the PDF has. Raises ``DocumentError`` as ``open_pdf`` does."""
    with open_pdf(path) as reader, _read_errors_as_document_error():
        return len(reader.pages)


def _decrypt(reader: PdfReader) -> None:
    # PDFs protected by an owner password only (against printing, copying...) open with
    # the empty user password.
    try:
        result = reader.decrypt("")
    except DependencyError as exc:
        raise DocumentError(
            "The PDF is encrypted in a way this service cannot read; "
            "save a copy without protection and upload that instead."
        ) from exc
    if result == PasswordType.NOT_DECRYPTED:
        raise DocumentError(
            "The PDF is password-protected; remove the password and upload it again."
        )


@contextmanager
def _read_errors_as_document_error() -> Iterator[None]:
    try:
        yield
    except _READ_ERRORS as exc:
        raise DocumentError(
            f"The PDF is damaged and cannot be read ({_short_reason(exc)})."
        ) from exc


def _short_reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if len(reason) > _REASON_MAX_CHARS:
        reason = reason[: _REASON_MAX_CHARS - 1].rstrip() + "…"
    return reason.rstrip(".")
