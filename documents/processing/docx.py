"""Word (.docx) text, split into pages at explicit page breaks, read as a stream.

Word decides where pages end only when it lays the document out, so the pages here are
the ones the author asked for: a page break (``<w:br w:type="page"/>``) or a paragraph
marked "page break before". N such breaks give N + 1 pages.

The file is untrusted: its zip is read through ``SafeZip`` (sizes counted while they are
unpacked), its XML by a parser that resolves no entities, loads nothing from outside and
refuses any document type declaration (Word never writes one; "billion laughs" and XXE
attacks need one). The main part is parsed as it is unpacked, one top-level paragraph or
table at a time, so memory follows the largest paragraph or table, not the document.
"""

import posixpath
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from documents.processing import DocumentError, Page
from documents.processing.safe_zip import DAMAGED, SafeZip

# A page's text is handed on in fragments of about this many characters (see Page).
FRAGMENT_CHARS = 1024 * 1024
_PACKAGE_PART_MAX_BYTES = 1024 * 1024  # [Content_Types].xml and _rels/.rels
_READ_BYTES = 64 * 1024
_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,  # libxml2's limits on depth and on the size of one text node
}
_HAS_DTD = (
    "The Word file contains a document type declaration, which Word never writes; it "
    "was not read, as files like this are used to attack servers."
)
_DOCTYPE_UTF16 = "<!DOCTYPE".encode("utf-16-le")
_DOCTYPES = (b"<!DOCTYPE", _DOCTYPE_UTF16, "<!DOCTYPE".encode("utf-16-be"))
_NOT_PLAIN_WORD = (
    "The file is not a plain Word document (it may be a template or contain "
    "macros); save it as .docx and upload it again."
)
_MAIN_DOCUMENT_TYPE = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
)
_OFFICE_DOCUMENT_RELATIONSHIP = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
)
_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"

_PAGE_BREAK = object()  # marks a page break among the text pieces

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_BODY = _W + "body"
_P = _W + "p"
_TBL = _W + "tbl"
_TR = _W + "tr"
_TC = _W + "tc"
_T = _W + "t"
_TAB = _W + "tab"
_BR = _W + "br"
_CR = _W + "cr"
_NO_BREAK_HYPHEN = _W + "noBreakHyphen"
_SDT = _W + "sdt"
_SDT_CONTENT = _W + "sdtContent"
_CUSTOM_XML = _W + "customXml"
_PPR = _W + "pPr"
_PAGE_BREAK_BEFORE = _W + "pageBreakBefore"
_TYPE = _W + "type"
_VAL = _W + "val"
# Markup compatibility; python-docx does not name this namespace.
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# Not text: properties, deleted or moved-away text, and the fallback copy of a text box
# that Word writes for older readers (reading it would double the text box).
_SKIPPED = {_W + "pPr", _W + "rPr", _W + "del", _W + "moveFrom", _MC_FALLBACK}


def check_zip_bomb(
    path: Path, *, max_uncompressed_bytes: int = 200 * 1024 * 1024, max_ratio: int = 100
) -> None:
    """Refuse a .docx whose zip directory declares too much, too many parts or overlaps.

    Only the directory is read; what a part really unpacks to is counted while it is read.
    """
    SafeZip(path, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio).close()


def extract_pages(
    path: Path, *, max_uncompressed_bytes: int = 200 * 1024 * 1024, max_ratio: int = 100
) -> Iterator[Page]:
    """The text of each page: paragraphs and table rows, in the order of the document.

    A table row is one line, its cells separated by `` | ``. The text is raw: normalise
    it before chunking. A page longer than ``FRAGMENT_CHARS`` comes in several ``Page``
    fragments with the same number. The zip passes ``check_zip_bomb`` (with the limits
    given here) before anything is unpacked.
    """
    with SafeZip(path, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio) as zf:
        main_part = _main_document_part(zf)
        try:
            stream = zf.open(main_part, max_bytes=max_uncompressed_bytes)
        except KeyError as exc:
            raise DocumentError(DAMAGED) from exc
        with stream:
            yield from _pages(_body(_top_level_blocks(stream)))


def _main_document_part(archive: SafeZip) -> str:
    """The name of the part holding the text, if the package is a plain Word document."""
    relationships = _small_part(archive, "_rels/.rels")
    targets = [
        rel.get("Target", "")
        for rel in relationships.iter(_RELATIONSHIP)
        if rel.get("Type") == _OFFICE_DOCUMENT_RELATIONSHIP and rel.get("TargetMode") != "External"
    ]
    if not targets:
        raise DocumentError(DAMAGED)
    name = posixpath.normpath(targets[0].lstrip("/"))
    content_types = _small_part(archive, "[Content_Types].xml")
    content_type = None
    for override in content_types.iter(_CONTENT_TYPES + "Override"):
        if override.get("PartName", "").lstrip("/").lower() == name.lower():
            content_type = override.get("ContentType")
    if content_type is None:
        extension = posixpath.splitext(name)[1].lstrip(".").lower()
        for default in content_types.iter(_CONTENT_TYPES + "Default"):
            if default.get("Extension", "").lower() == extension:
                content_type = default.get("ContentType")
    if content_type != _MAIN_DOCUMENT_TYPE:
        raise DocumentError(_NOT_PLAIN_WORD)
    return name


def _small_part(archive: SafeZip, name: str) -> etree._Element:
    try:
        with archive.open(name, max_bytes=_PACKAGE_PART_MAX_BYTES) as stream:
            data = stream.read()
        _refuse_dtd_in(data)
        root = etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))
    except (KeyError, etree.LxmlError, ValueError) as exc:
        raise DocumentError(DAMAGED) from exc
    _refuse_dtd(root)
    return root


def _refuse_dtd_in(data: bytes) -> None:
    """Refuse a declaration before the parser reads it: libxml2 may fail on its entities
    (as "damaged") before the root element shows that there was one."""
    if any(doctype in data for doctype in _DOCTYPES):
        raise DocumentError(_HAS_DTD)


def _refuse_dtd(root: etree._Element) -> None:
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise DocumentError(_HAS_DTD)


def _top_level_blocks(stream) -> Iterator[etree._Element]:
    """The body's children, each as soon as it is complete; forgotten once handed on."""
    parser = etree.XMLPullParser(events=("start", "end"), **_PARSER_OPTIONS)
    depth = 0
    before_root = b""  # the end of what came before the root element, as far as seen
    while True:
        data = stream.read(_READ_BYTES)
        if depth == 0 and before_root is not None:
            _refuse_dtd_in(before_root + data)
            before_root = data[-len(_DOCTYPE_UTF16) :]
        try:
            if data:
                parser.feed(data)
            else:
                parser.close()
            events = list(parser.read_events())
        except (etree.LxmlError, ValueError) as exc:
            raise DocumentError(DAMAGED) from exc
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    _refuse_dtd(element)
                    before_root = None
                continue
            depth -= 1
            parent = element.getparent()
            if depth == 2 and parent is not None and parent.tag == _BODY:
                yield element
                element.clear()
                while element.getprevious() is not None:  # cleared siblings hold memory too
                    del parent[0]
        if not data:
            return


def _pages(pieces: Iterator[object]) -> Iterator[Page]:
    number = 1
    text: list[str] = []
    length = 0
    for piece in pieces:
        if piece is _PAGE_BREAK:
            yield Page(number=number, text="".join(text))
            number += 1
            text, length = [], 0
        else:
            text.append(piece)
            length += len(piece)
            if length >= FRAGMENT_CHARS:
                yield Page(number=number, text="".join(text))
                text, length = [], 0
    yield Page(number=number, text="".join(text))


def _body(top_level: Iterator[etree._Element]) -> Iterator[object]:
    started = False
    for block in (block for element in top_level for block in _blocks([element])):
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


def _blocks(container) -> Iterator[etree._Element]:
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
