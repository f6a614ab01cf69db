"""Sample documents for tests and benchmarks, generated on the spot (never downloaded).

Every function writes one file at ``path`` and returns ``path``.
"""

import io
import textwrap
import zipfile
from pathlib import Path

from docx import Document
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

# A4 with 15 mm margins and 10 pt Helvetica: about 95 average characters fit on a line and
# 50 lines of 5 mm on a page. We wrap by character count, which is crude but keeps each
# string on exactly one PDF page.
_PDF_CHARS_PER_LINE = 90
_PDF_LINES_PER_PAGE = 52
_PDF_LINE_HEIGHT_MM = 5

_CONTENT_TYPES_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Nothing to see.</w:t></w:r></w:p></w:body></w:document>"
)


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF with one page per string, in Helvetica (so Latin-1 characters only).

    Lines are placed with ``FPDF.text`` after wrapping by character count: fpdf2's own
    ``multi_cell`` line breaking takes about 0.1 s per page, too slow for a 200-page
    benchmark file, while this takes about 1 ms. pypdf gives back the words, one line
    of the page per line of text.
    """
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    for number, text in enumerate(pages, start=1):
        lines = [line for paragraph in text.split("\n") for line in (_wrap(paragraph) or [""])]
        if len(lines) > _PDF_LINES_PER_PAGE:
            raise ValueError(
                f"Page {number} has {len(lines)} lines; at most {_PDF_LINES_PER_PAGE} fit."
            )
        pdf.add_page()
        y = 20.0
        for line in lines:
            if line:
                pdf.text(15, y, line)
            y += _PDF_LINE_HEIGHT_MM
    pdf.output(str(path))
    return path


def _wrap(paragraph: str) -> list[str]:
    # Breaking only at spaces keeps every word whole: no "well-" / "known" that
    # normalisation would join, no long word split in two.
    return textwrap.wrap(
        paragraph, _PDF_CHARS_PER_LINE, break_on_hyphens=False, break_long_words=False
    )


def make_encrypted_pdf(
    path: Path,
    *,
    user_password: str = "secret",
    owner_password: str = "owner",
    algorithm: str = "RC4-128",
) -> Path:
    """A one-page PDF encrypted with ``algorithm`` (pypdf's names: "RC4-128", "AES-256"...).

    With ``user_password=""`` anyone can open it: only the owner password is set.
    """
    plain = io.BytesIO()
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.text(15, 20, "Confidential words")
    pdf.output(plain)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    with open(path, "wb") as out:
        writer.write(out)
    return path


def make_truncated_pdf(path: Path) -> Path:
    """A PDF cut off after a third of its bytes, as an interrupted upload leaves it."""
    make_pdf(path, ["First page of a document", "Second page", "Third page"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def make_docx(path: Path, pages: list[list[str]], *, table: list[list[str]] | None = None) -> Path:
    """A Word file: each inner list is one page of paragraphs, with a page break between.

    ``table`` (rows of cell texts) is added at the end of the first page.
    """
    document = Document()
    for number, paragraphs in enumerate(pages, start=1):
        if number > 1:
            document.add_page_break()
        for text in paragraphs:
            document.add_paragraph(text)
        if number == 1 and table:
            grid = document.add_table(rows=len(table), cols=len(table[0]))
            for row, cells in zip(grid.rows, table, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = text
    document.save(str(path))
    return path


def make_truncated_docx(path: Path) -> Path:
    """A Word file cut in half: the zip's central directory, at the end, is missing."""
    make_docx(path, [["Some text that will be cut off."]])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_zip_bomb_docx(path: Path, *, uncompressed_bytes: int = 300 * 1024 * 1024) -> Path:
    """A docx-shaped zip with a member of zeros that inflates to ``uncompressed_bytes``.

    The zeros are deflated while they are written, one MiB at a time, so the default
    300 MB bomb takes about 2 s and ~300 KB of disk.
    """
    block = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES_XML)
        archive.writestr("word/document.xml", _DOCUMENT_XML)
        with archive.open("word/media/zeros.bin", "w", force_zip64=True) as member:
            remaining = uncompressed_bytes
            while remaining > 0:
                member.write(block[: min(remaining, len(block))])
                remaining -= len(block)
    return path


def make_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """A text file in ``encoding`` (``"utf-8-sig"`` writes a byte order mark).

    Characters the encoding lacks are saved as "?", as an old editor saving in Latin-1
    would: ``make_text(path, "café — ok", "latin-1")`` holds "café ? ok".
    """
    path.write_bytes(text.encode(encoding, errors="replace"))
    return path
