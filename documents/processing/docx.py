"""Word (.docx) text with python-docx, split into pages at explicit page breaks.

Word decides where pages end only when it lays the document out, so the pages here are
the ones the author asked for: a page break (``<w:br w:type="page"/>``) or a paragraph
marked "page break before". N such breaks give N + 1 pages.
"""

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import docx
from docx.opc.exceptions import OpcError
from docx.oxml.ns import qn
from lxml import etree

from documents.processing import DocumentError, Page

_DAMAGED = "The Word file is damaged (truncated or not a valid .docx)."
# Below this size a high compression ratio is harmless (a long table of empty cells).
_RATIO_CHECK_MIN_BYTES = 10 * 1024 * 1024
_OPEN_ERRORS = (
    OpcError,
    zipfile.BadZipFile,
    KeyError,  # a part the package refers to is missing
    ValueError,
    AttributeError,
    TypeError,
    IndexError,
    EOFError,
    zlib.error,
    etree.LxmlError,
)

_PAGE_BREAK = object()  # marks a page break among the text pieces

_P = qn("w:p")
_TBL = qn("w:tbl")
_TR = qn("w:tr")
_TC = qn("w:tc")
_T = qn("w:t")
_TAB = qn("w:tab")
_BR = qn("w:br")
_CR = qn("w:cr")
_NO_BREAK_HYPHEN = qn("w:noBreakHyphen")
_SDT = qn("w:sdt")
_SDT_CONTENT = qn("w:sdtContent")
_CUSTOM_XML = qn("w:customXml")
_PPR = qn("w:pPr")
_PAGE_BREAK_BEFORE = qn("w:pageBreakBefore")
_TYPE = qn("w:type")
_VAL = qn("w:val")
# Markup compatibility; python-docx does not name this namespace.
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# Not text: properties, deleted or moved-away text, and the fallback copy of a text box
# that Word writes for older readers (reading it would double the text box).
_SKIPPED = {qn("w:pPr"), qn("w:rPr"), qn("w:del"), qn("w:moveFrom"), _MC_FALLBACK}


def check_zip_bomb(
    path: Path, *, max_uncompressed_bytes: int = 200 * 1024 * 1024, max_ratio: int = 100
) -> None:
    """Refuse a .docx that would inflate to too much, judged by its zip directory alone.

    The sizes declared in the central directory bound what unzipping produces: Python's
    zipfile stops a member at its declared size.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DocumentError(_DAMAGED) from exc
    uncompressed = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members)
    if uncompressed > max_uncompressed_bytes:
        raise DocumentError(
            f"The Word file is too large once unpacked: {_size(uncompressed)}, more than "
            f"the {_size(max_uncompressed_bytes)} allowed."
        )
    ratio = uncompressed / max(compressed, 1)
    if uncompressed >= _RATIO_CHECK_MIN_BYTES and ratio > max_ratio:
        raise DocumentError(
            f"The Word file is compressed {ratio:.0f} to 1, far more than real documents "
            "are; it was not opened, as files like this are used to exhaust servers."
        )


def extract_pages(
    path: Path, *, max_uncompressed_bytes: int = 200 * 1024 * 1024, max_ratio: int = 100
) -> Iterator[Page]:
    """The text of each page: paragraphs and table rows, in the order of the document.

    A table row is one line, its cells separated by `` | ``. The text is raw: normalise
    it before chunking. The file passes ``check_zip_bomb`` (with the limits given here)
    before it is opened.
    """
    check_zip_bomb(path, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
    try:
        document = docx.Document(str(path))
    except ValueError as exc:
        if "is not a Word file" not in str(exc):
            raise DocumentError(_DAMAGED) from exc
        raise DocumentError(
            "The file is not a plain Word document (it may be a template or contain "
            "macros); save it as .docx and upload it again."
        ) from exc
    except _OPEN_ERRORS as exc:
        raise DocumentError(_DAMAGED) from exc

    number = 1
    pieces: list[str] = []
    for piece in _body(document.element.body):
        if piece is _PAGE_BREAK:
            yield Page(number=number, text="".join(pieces))
            number += 1
            pieces = []
        else:
            pieces.append(piece)
    yield Page(number=number, text="".join(pieces))


def _body(body: etree._Element) -> Iterator[object]:
    started = False
    for block in _blocks(body):
        if block.tag == _P:
            # Word ignores "page break before" on the very first paragraph.
            if started and _has_page_break_before(block):
                yield _PAGE_BREAK
            yield from _inline(block)
            yield "\n"
        elif block.tag == _TBL:
            yield from _table(block)
        else:
            continue  # bookmarks, section properties...
        started = True


def _blocks(container: etree._Element) -> Iterator[etree._Element]:
    """Children of a body, cell or row, with content controls and custom XML unwrapped."""
    for child in container:
        if child.tag == _SDT:
            content = child.find(_SDT_CONTENT)
            if content is not None:
                yield from _blocks(content)
        elif child.tag == _CUSTOM_XML:
            yield from _blocks(child)
        else:
            yield child


def _table(table: etree._Element) -> Iterator[object]:
    for row in _blocks(table):
        if row.tag != _TR:
            continue
        cells = [_cell_text(cell) for cell in _blocks(row) if cell.tag == _TC]
        if any(cells):
            yield " | ".join(cells)
            yield "\n"


def _cell_text(cell: etree._Element) -> str:
    """A cell's text on one line (a page break inside a table is not a page of its own)."""
    lines: list[str] = []
    for block in _blocks(cell):
        if block.tag == _P:
            lines.append("".join(p for p in _inline(block) if p is not _PAGE_BREAK))
        elif block.tag == _TBL:
            lines.append("".join(p for p in _table(block) if p is not _PAGE_BREAK))
    return " ".join(" ".join(lines).split())


def _inline(element: etree._Element) -> Iterator[object]:
    for child in element:
        tag = child.tag
        if tag == _T:
            yield child.text or ""
        elif tag == _TAB:
            yield "\t"
        elif tag == _BR:
            yield _PAGE_BREAK if child.get(_TYPE) == "page" else "\n"
        elif tag == _CR:
            yield "\n"
        elif tag == _NO_BREAK_HYPHEN:
            yield "-"
        elif tag == _P:  # a paragraph inside a text box
            yield "\n"
            yield from _inline(child)
            yield "\n"
        elif tag not in _SKIPPED:
            yield from _inline(child)


def _has_page_break_before(paragraph: etree._Element) -> bool:
    properties = paragraph.find(_PPR)
    if properties is None:
        return False
    flag = properties.find(_PAGE_BREAK_BEFORE)
    return flag is not None and flag.get(_VAL, "true").lower() not in {"false", "0", "off"}


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{round(size / (1024 * 1024))} MB"
    return f"{-(-size // 1024)} KB"
