"""Extraction in a child process: its answers, its limits, and that it never outlives us."""

import os
import resource
import signal
import zlib
from pathlib import Path

import pytest

from documents.processing import DocumentError, DocumentKind, PagePiece
from documents.processing.isolation import ChildExtraction, ExtractionLimits
from tests.documents import samples

pytestmark = pytest.mark.integration

LIMITS = ExtractionLimits(
    memory_bytes=512 * 2**20, seconds=60, max_docx_uncompressed_bytes=200 * 2**20
)


def extraction_children(parent: int | None = None) -> set[int]:
    """Living extraction children of ``parent`` (this process by default)."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                parent_pid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            if parent_pid == parent and b"documents.processing.extraction_child" in command:
                found.add(int(entry.name))
    return found


@pytest.fixture
def no_child_left():
    before = extraction_children()
    yield
    assert extraction_children() - before == set()


@pytest.fixture
def token_heavy_pdf(tmp_path) -> Path:
    """A 120 KB PDF whose one page holds six million text operators: slow and hungry."""
    content = b"BT /F1 12 Tf 72 700 Td " + b"(word) Tj " * 6_000_000 + b"ET"
    path = tmp_path / "heavy.pdf"
    path.write_bytes(
        samples.pdf_with_content(zlib.compress(content, 9), filters=b"/Filter /FlateDecode")
    )
    return path


def extract(kind, path, limits=LIMITS, **callbacks) -> list[PagePiece]:
    with ChildExtraction(kind, path, limits=limits, **callbacks) as pieces:
        return list(pieces)


def test_pages_come_back_normalized_with_the_page_count(tmp_path, no_child_left):
    path = samples.make_pdf(tmp_path / "a.pdf", ["First   page", "Second page"])
    counts = []

    pieces = extract(DocumentKind.PDF, path, on_page_count=counts.append)

    assert pieces == [PagePiece(1, "First page", True), PagePiece(2, "Second page", True)]
    assert counts == [2]


def test_every_kind_is_read(tmp_path, no_child_left):
    docx = samples.make_docx(tmp_path / "a.docx", [["Word text"]])
    text = samples.make_text(tmp_path / "a.txt", "Plain\ttext\n")
    html = tmp_path / "a.html"
    html.write_text("<title>T</title><p>Web text</p>")

    assert extract(DocumentKind.DOCX, docx) == [PagePiece(1, "Word text", True)]
    assert extract(DocumentKind.TEXT, text) == [PagePiece(1, "Plain text", True)]
    assert extract(DocumentKind.MARKDOWN, text) == [PagePiece(1, "Plain text", True)]
    assert extract(DocumentKind.HTML, html) == [PagePiece(1, "T\nWeb text", True)]


def test_a_long_page_comes_in_pieces(tmp_path, no_child_left):
    path = samples.make_text(tmp_path / "a.txt", "many words here\n" * 100_000)

    pieces = extract(DocumentKind.TEXT, path)

    assert len(pieces) > 2
    assert [piece.first for piece in pieces] == [True] + [False] * (len(pieces) - 1)
    assert "".join(piece.text for piece in pieces) == ("many words here\n" * 100_000).strip()


def test_document_errors_are_passed_on_with_their_message(tmp_path, no_child_left):
    path = samples.make_truncated_docx(tmp_path / "a.docx")
    with pytest.raises(DocumentError, match=r"^The Word file is damaged"):
        extract(DocumentKind.DOCX, path)


def test_file_needing_more_memory_than_allowed_fails_with_a_reason(token_heavy_pdf, no_child_left):
    extraction = ChildExtraction(
        DocumentKind.PDF,
        token_heavy_pdf,
        limits=ExtractionLimits(
            memory_bytes=150 * 2**20, seconds=60, max_docx_uncompressed_bytes=2**20
        ),
    )
    with pytest.raises(DocumentError) as caught:
        with extraction as pieces:
            list(pieces)

    assert str(caught.value) == (
        "Reading the document needed more than the 150 MB of memory allowed; it may be "
        "damaged or built to exhaust servers."
    )
    assert extraction.peak_memory_bytes < 150 * 2**20


def test_file_taking_longer_than_allowed_is_stopped(token_heavy_pdf, no_child_left):
    limits = ExtractionLimits(memory_bytes=512 * 2**20, seconds=1, max_docx_uncompressed_bytes=1)
    with pytest.raises(DocumentError) as caught:
        extract(DocumentKind.PDF, token_heavy_pdf, limits=limits)
    assert str(caught.value) == (
        "Reading the document took longer than the 1 s allowed; it may be damaged or built "
        "to exhaust servers."
    )


class Cancelled(Exception):
    pass


def test_a_cancel_heard_while_the_child_works_stops_it(token_heavy_pdf, no_child_left):
    calls = []

    def cancelled() -> None:
        calls.append(1)
        raise Cancelled

    with pytest.raises(Cancelled):
        extract(DocumentKind.PDF, token_heavy_pdf, on_idle=cancelled)
    assert calls == [1]


def test_a_consumer_that_stops_early_stops_the_child(tmp_path, no_child_left):
    path = samples.make_text(tmp_path / "a.txt", "page\f" * 50_000)

    with ChildExtraction(DocumentKind.TEXT, path, limits=LIMITS) as pieces:
        first = next(pieces)

    assert first == PagePiece(1, "page", True)


@pytest.mark.parametrize(
    ("signal_number", "reason"),
    [
        (signal.SIGSEGV, "its reader crashed, most likely for lack of memory"),
        (signal.SIGKILL, "its reader was stopped by the system, for lack of memory or time"),
    ],
    ids=["crash", "killed"],
)
def test_a_child_that_dies_fails_the_document_with_a_reason(
    token_heavy_pdf, no_child_left, signal_number, reason
):
    def die() -> None:
        for pid in extraction_children():
            os.kill(pid, signal_number)

    with pytest.raises(DocumentError) as caught:
        extract(DocumentKind.PDF, token_heavy_pdf, on_idle=die)
    assert str(caught.value).startswith(f"The document could not be read: {reason}")


def test_the_child_limits_its_own_address_space_not_ours(tmp_path):
    before = resource.getrlimit(resource.RLIMIT_AS)
    extract(DocumentKind.TEXT, samples.make_text(tmp_path / "a.txt", "x"))
    assert resource.getrlimit(resource.RLIMIT_AS) == before
