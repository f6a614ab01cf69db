"""Sample documents for tests and benchmarks, generated on the spot (never downloaded).

Every function writes one file at ``path`` and returns ``path``.
"""

import io
import struct
import textwrap
import zipfile
import zlib
from dataclasses import dataclass
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


# --- hostile files ---------------------------------------------------------------------------
# Built byte by byte where a library would refuse to write them (lying sizes, shared data).

WORD_CONTENT_TYPES_XML = _CONTENT_TYPES_XML.replace(
    "</Types>",
    '<Default Extension="rels" ContentType="application/'
    'vnd.openxmlformats-package.relationships+xml"/></Types>',
)
WORD_RELS_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


@dataclass
class ZipMember:
    """One entry of a zip written by ``write_zip``, declared as its fields say."""

    name: str
    data: bytes  # the stored (compressed) bytes
    size: int  # the unpacked size declared in the headers
    crc: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0
    shares_data_of: str | None = None  # an earlier member whose bytes this entry points at
    external_attributes: int = 0  # the file's type and mode, in the top 16 bits


def zip_member(
    name: str, content: bytes, *, declared_size: int | None = None, level: int = 9
) -> ZipMember:
    """A deflated member; ``declared_size`` may lie about its unpacked size."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    data = deflater.compress(content) + deflater.flush()
    size = len(content) if declared_size is None else declared_size
    return ZipMember(name, data, size, zlib.crc32(content))


def zeros_member(
    name: str, *, real_size: int, declared_size: int, prefix: bytes = b""
) -> ZipMember:
    """``prefix`` then zeros up to ``real_size`` bytes, deflated in ~1 s per GiB.

    Deflate blocks ended with a full flush start afresh, so one compressed MiB of zeros
    repeated is the compressed stream of many MiB of zeros.
    """
    mib = 1024 * 1024
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflater.compress(prefix) + deflater.flush(zlib.Z_FULL_FLUSH)
    block = deflater.compress(bytes(mib)) + deflater.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(real_size - len(prefix), mib)
    tail = deflater.compress(bytes(rest)) + deflater.flush()
    crc = zlib.crc32(prefix)
    zeros = bytes(mib)
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return ZipMember(name, head + block * blocks + tail, declared_size, crc)


def write_zip(path: Path, members: list[ZipMember]) -> Path:
    """A zip with exactly these entries and headers, however wrong they are."""
    out = bytearray()
    written: dict[str, tuple[int, ZipMember]] = {}
    directory = bytearray()
    for member in members:
        name = member.name.encode()
        if member.shares_data_of is None:
            offset = len(out)
            out += struct.pack(
                "<4sHHHHHIIIHH",
                b"PK\x03\x04",
                20,
                member.flags,
                member.method,
                0,
                0,
                member.crc,
                len(member.data),
                member.size,
                len(name),
                0,
            )
            out += name + member.data
            written[member.name] = (offset, member)
        else:
            offset, shared = written[member.shares_data_of]
            member = ZipMember(member.name, shared.data, shared.size, shared.crc, shared.method)
        directory += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            member.flags,
            member.method,
            0,
            0,
            member.crc,
            len(member.data),
            member.size,
            len(name),
            0,
            0,
            0,
            0,
            member.external_attributes,
            offset,
        )
        directory += name
    start = len(out)
    out += directory
    out += struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0
    )
    path.write_bytes(bytes(out))
    return path


def word_package(document_xml: bytes, *extra: ZipMember) -> list[ZipMember]:
    """The members of a minimal .docx around ``document_xml``."""
    return [
        zip_member("[Content_Types].xml", WORD_CONTENT_TYPES_XML.encode()),
        zip_member("_rels/.rels", WORD_RELS_XML.encode()),
        zip_member("word/document.xml", document_xml),
        *extra,
    ]


def word_xml(body: str, *, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<w:document xmlns:w="{WORD_NS}">'
        f"<w:body>{body}</w:body></w:document>"
    ).encode()


def word_paragraphs(texts: list[str]) -> str:
    return "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in texts)


def make_under_declared_docx(path: Path, *, real_bytes: int, declared_bytes: int = 1024) -> Path:
    """A .docx whose word/document.xml declares ``declared_bytes`` but unpacks to far more."""
    prefix = word_xml("")[: -len("</w:body></w:document>")] + b"<w:p><w:r><w:t>"
    bomb = zeros_member(
        "word/document.xml", real_size=real_bytes, declared_size=declared_bytes, prefix=prefix
    )
    members = word_package(b"")
    members[2] = bomb
    return write_zip(path, members)


def pdf_from_objects(objects: list[bytes], *, trailer: bytes = b"/Root 1 0 R") -> bytes:
    """A PDF of these objects (numbered from 1) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        xref,
    )
    return bytes(out)


def pdf_with_content(content: bytes, *, filters: bytes = b"", extra: list[bytes] = ()) -> bytes:
    """A one-page PDF whose content stream is ``content`` (already encoded by ``filters``)."""
    stream = b"<< /Length %d %s >>\nstream\n" % (len(content), filters) + content + b"\nendstream"
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            stream,
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            *extra,
        ]
    )
