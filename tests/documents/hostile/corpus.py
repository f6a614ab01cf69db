"""Hostile files, generated on the spot: shapes known to hang, crash or exhaust parsers.

Each entry says how the file is submitted (uploaded under a name, or served as a web page)
and what a user must see in the end: the upload refused (415), the document completed,
or the document failed with a reason containing a given phrase.
"""

import random
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.documents import samples

MIB = 2**20


@dataclass(frozen=True)
class Hostile:
    name: str  # the file name it is uploaded as (.html: served as a web page)
    make: Callable[[Path], bytes]
    outcome: str  # "refused" (at upload), "completed" or "failed"
    reason: str = ""  # a phrase of the refusal or failure, lower case


# --- helpers ---------------------------------------------------------------------------------


def deflated_zeros(total: int, *, prefix: bytes = b"", zlib_wrapped: bool = True) -> bytes:
    """``prefix`` and zeros up to ``total`` bytes, deflated in ~1 s per GiB (see samples)."""
    member = samples.zeros_member("x", real_size=total, declared_size=total, prefix=prefix)
    if not zlib_wrapped:
        return member.data
    # A zlib header; the checksum at the end is left out: readers stop long before it.
    return b"\x78\xda" + member.data


def pdf_objects(*objects: bytes, trailer: bytes = b"/Root 1 0 R") -> bytes:
    return samples.pdf_from_objects(list(objects), trailer=trailer)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
ONE_PAGE = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"


def stream(content: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(content), entries) + content + b"\nendstream"


def text_page(content: bytes = b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET") -> bytes:
    return samples.pdf_with_content(content)


def docx_of(document_xml: bytes, *extra: samples.ZipMember) -> Callable[[Path], bytes]:
    def make(path: Path) -> bytes:
        return samples.write_zip(path, samples.word_package(document_xml, *extra)).read_bytes()

    return make


HELLO_XML = samples.word_xml(samples.word_paragraphs(["Hello from a hostile corpus."]))


def member_with(name: str, content: bytes, **fields) -> samples.ZipMember:
    member = samples.zip_member(name, content)
    return samples.ZipMember(**{**member.__dict__, **fields})


# --- PDF -------------------------------------------------------------------------------------


def pdf_xref_loop(path: Path) -> bytes:
    """CVE-2026-27628: two cross-reference sections whose /Prev point at each other."""
    body = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, obj in enumerate([CATALOG, ONE_PAGE, PAGE, stream(b"BT ET")], start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    table = b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    first = len(body)
    second = first + len(table) + len(b"trailer\n<< /Size 5 /Root 1 0 R /Prev 0000000000 >>\n")
    body += table + b"trailer\n<< /Size 5 /Root 1 0 R /Prev %010d >>\n" % second
    body += table + b"trailer\n<< /Size 5 /Root 1 0 R /Prev %010d >>\n" % first
    body += b"startxref\n%d\n%%%%EOF\n" % first
    return bytes(body)


def pdf_outline_loop(path: Path) -> bytes:
    """CVE-2026-24688: an outline item that is its own next item."""
    return pdf_objects(
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>",
        ONE_PAGE,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 7 0 R >> >> >>",
        stream(b"BT /F1 12 Tf 72 700 Td (Outlined) Tj ET"),
        b"<< /Type /Outlines /First 6 0 R /Last 6 0 R /Count 1 >>",
        b"<< /Title (Loop) /Parent 5 0 R /Next 6 0 R /Prev 6 0 R /First 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    )


def pdf_page_tree_loop(path: Path) -> bytes:
    return pdf_objects(
        CATALOG,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1 >>",
    )


def pdf_many_pages(path: Path, count: int = 10_000) -> bytes:
    kids = b" ".join(b"%d 0 R" % (4 + n) for n in range(count))
    pages = [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + count)
    ] * count
    return pdf_objects(
        CATALOG,
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        stream(b"BT /F1 12 Tf 72 700 Td (Same words on every page) Tj ET"),
        *pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    )


def pdf_huge_declared_length(path: Path) -> bytes:
    content = b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET"
    return samples.pdf_with_content(content).replace(
        b"/Length %d" % len(content), b"/Length 999999999999"
    )


def pdf_xref_past_the_end(path: Path) -> bytes:
    data = text_page()
    start = data.rindex(b"startxref\n") + len(b"startxref\n")
    return data[:start] + b"987654321\n%%EOF\n"


def pdf_garbage_offsets(path: Path) -> bytes:
    data = bytearray(text_page())
    table = data.index(b"xref\n")
    for line_start in range(table + len(b"xref\n0 6\n0000000000 65535 f \n"), len(data), 20):
        if data[line_start + 17 : line_start + 18] == b"n":
            data[line_start : line_start + 10] = b"%010d" % random.Random(line_start).randrange(
                10**9
            )
    return bytes(data)


PDF = [
    Hostile("xref-prev-loop.pdf", pdf_xref_loop, "failed", "no text"),
    Hostile("outline-loop.pdf", pdf_outline_loop, "completed"),
    Hostile("page-tree-loop.pdf", pdf_page_tree_loop, "failed", "pdf is damaged"),
    Hostile(
        "comment-at-end-of-content.pdf",
        lambda path: text_page(b"BT /F1 12 Tf 72 700 Td (Hi) Tj ET %"),
        "completed",
    ),
    Hostile(
        "flate-bomb.pdf",
        lambda path: samples.pdf_with_content(
            deflated_zeros(2**30), filters=b"/Filter /FlateDecode"
        ),
        "failed",
        "limit",
    ),
    Hostile(
        "nested-flate-bomb.pdf",
        lambda path: samples.pdf_with_content(
            zlib.compress(deflated_zeros(2**30), 9), filters=b"/Filter [/FlateDecode /FlateDecode]"
        ),
        "failed",
        "limit",
    ),
    Hostile(
        "run-length-bomb.pdf",
        lambda path: samples.pdf_with_content(
            b"\x81\x20" * MIB + b"\x80", filters=b"/Filter /RunLengthDecode"
        ),
        "failed",
        "limit",
    ),
    Hostile(
        "token-flood.pdf",
        lambda path: samples.pdf_with_content(
            zlib.compress(b"BT " + b"(w) Tj " * 6_000_000 + b"ET", 9),
            filters=b"/Filter /FlateDecode",
        ),
        "failed",
        "maximum number of tokens",
    ),
    Hostile(
        "inline-image-without-end.pdf",
        lambda path: text_page(
            b"BT (Before) Tj ET BI /W 10 /H 10 /BPC 8 /CS /G ID " + bytes(range(256)) * 40
        ),
        "failed",
        "pdf is damaged",
    ),
    Hostile("huge-declared-length.pdf", pdf_huge_declared_length, "failed", "pdf is damaged"),
    Hostile("xref-past-the-end.pdf", pdf_xref_past_the_end, "completed"),
    Hostile("garbage-xref-offsets.pdf", pdf_garbage_offsets, "completed"),
    Hostile("ten-thousand-pages.pdf", pdf_many_pages, "completed"),
    Hostile("header-only.pdf", lambda path: b"%PDF-1.7\n", "failed", "pdf is damaged"),
    Hostile(
        "password.pdf",
        lambda path: samples.make_encrypted_pdf(path).read_bytes(),
        "failed",
        "password",
    ),
    Hostile(
        "truncated.pdf",
        lambda path: samples.make_truncated_pdf(path).read_bytes(),
        "failed",
        "damaged",
    ),
    Hostile("program-named.pdf", lambda path: b"MZ\x90\x00" + bytes(4096), "refused", ".pdf"),
]


# --- DOCX (zip) ------------------------------------------------------------------------------


def docx_deep_nesting(path: Path) -> bytes:
    nested = "<w:customXml>" * 100_000 + "</w:customXml>" * 100_000
    return docx_of(samples.word_xml(nested + samples.word_paragraphs(["deep"])))(path)


def docx_nested_zip_bomb(path: Path) -> bytes:
    inner = samples.write_zip(
        path.with_suffix(".inner.zip"),
        [
            samples.zeros_member(f"{n}.bin", real_size=64 * MIB, declared_size=64 * MIB)
            for n in range(8)
        ],
    ).read_bytes()
    return docx_of(
        HELLO_XML,
        samples.ZipMember(
            "word/embeddings/inner.zip", inner, len(inner), zlib.crc32(inner), method=0
        ),
    )(path)


DOCX = [
    Hostile(
        "under-declared.docx",
        lambda path: samples.make_under_declared_docx(path, real_bytes=2**30).read_bytes(),
        "failed",
        "holds more bytes than its zip directory declares",
    ),
    Hostile(
        "declared-too-large.docx",
        lambda path: samples.make_zip_bomb_docx(path).read_bytes(),
        "failed",
        "too large once unpacked",
    ),
    Hostile(
        "ratio-bomb.docx",
        lambda path: samples.make_zip_bomb_docx(path, uncompressed_bytes=20 * MIB).read_bytes(),
        "failed",
        "compressed",
    ),
    Hostile(
        "many-members.docx",
        docx_of(HELLO_XML, *[samples.zip_member(f"word/media/{n}.png", b"x") for n in range(6000)]),
        "failed",
        "parts, more than",
    ),
    Hostile(
        "overlapping-entries.docx",
        docx_of(
            HELLO_XML,
            *[
                samples.ZipMember(
                    f"word/media/{n}.xml", b"", 0, 0, shares_data_of="word/document.xml"
                )
                for n in range(1000)
            ],
        ),
        "failed",
        "overlap",
    ),
    Hostile(
        "duplicate-names.docx",
        docx_of(HELLO_XML, samples.zip_member("word/document.xml", b"<x/>")),
        "failed",
        "twice",
    ),
    Hostile(
        "billion-laughs.docx",
        docx_of(
            samples.word_xml(
                samples.word_paragraphs(["&a9;"]),
                prolog="<!DOCTYPE d [<!ENTITY a0 'ha'>"
                + "".join(f"<!ENTITY a{n} '{f'&a{n - 1};' * 10}'>" for n in range(1, 10))
                + "]>",
            )
        ),
        "failed",
        "document type declaration",
    ),
    Hostile(
        "external-entity.docx",
        docx_of(
            samples.word_xml(
                samples.word_paragraphs(["&canary;"]),
                prolog='<!DOCTYPE d [<!ENTITY canary SYSTEM "file:///etc/hostname">]>',
            )
        ),
        "failed",
        "document type declaration",
    ),
    Hostile("deep-xml-nesting.docx", docx_deep_nesting, "failed", "damaged"),
    Hostile("nested-zip-bomb.docx", docx_nested_zip_bomb, "completed"),
    Hostile(
        "zip-slip-names.docx",
        docx_of(HELLO_XML, samples.zip_member("../../../../tmp/evil.sh", b"echo owned")),
        "completed",
    ),
    Hostile(
        "symlink-member.docx",
        docx_of(
            HELLO_XML,
            member_with(
                "word/link", b"/etc/passwd", external_attributes=(stat.S_IFLNK | 0o777) << 16
            ),
        ),
        "completed",
    ),
    Hostile(
        "encrypted-member.docx",
        lambda path: samples.write_zip(
            path,
            [
                *samples.word_package(b"")[:2],
                member_with("word/document.xml", HELLO_XML, flags=1),
            ],
        ).read_bytes(),
        "failed",
        "encrypted",
    ),
    Hostile(
        "unknown-compression.docx",
        lambda path: samples.write_zip(
            path,
            [
                *samples.word_package(b"")[:2],
                member_with("word/document.xml", HELLO_XML, method=14),
            ],
        ).read_bytes(),
        "failed",
        "damaged",
    ),
    Hostile(
        "wrong-checksum.docx",
        lambda path: samples.write_zip(
            path,
            [*samples.word_package(b"")[:2], member_with("word/document.xml", HELLO_XML, crc=1)],
        ).read_bytes(),
        "failed",
        "damaged",
    ),
    Hostile("not-xml.docx", docx_of(bytes(range(256)) * 100), "failed", "damaged"),
    Hostile(
        "one-huge-text-node.docx",
        # More than libxml2 allows in one text node (10 MB) without its "huge tree" option.
        lambda path: docx_of(samples.word_xml(samples.word_paragraphs([words(2_000_000)])))(path),
        "failed",
        "damaged",
    ),
    Hostile(
        "truncated.docx",
        lambda path: samples.make_truncated_docx(path).read_bytes(),
        "failed",
        "damaged",
    ),
    Hostile(
        "pdf-named.docx",
        lambda path: text_page(),
        "refused",
        "rename it to .pdf",
    ),
]


# --- text ------------------------------------------------------------------------------------

WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod".split()


def words(count: int, seed: int = 0) -> str:
    return " ".join(random.Random(seed).choices(WORDS, k=count))


TEXT = [
    Hostile("one-enormous-line.txt", lambda path: words(2_000_000).encode(), "completed"),
    Hostile("no-whitespace-at-all.txt", lambda path: b"abcdefghij" * MIB, "completed"),
    Hostile("nul-bytes.txt", lambda path: b"text\x00with\x00nuls\n" * 1000, "refused", ".txt"),
    Hostile(
        "invalid-utf8-late.txt",
        lambda path: words(300_000).encode() + b"\nfin \xff\xfe\xc3\x28 end\n",
        "completed",
    ),
    Hostile(
        "utf8-surrogates.txt",
        lambda path: b"before \xed\xa0\x80 after, " * 2000,
        "completed",
    ),
    Hostile(
        "utf16-without-bom.txt",
        lambda path: words(20_000).encode("utf-16-le"),
        "refused",
        ".txt",
    ),
    Hostile("utf32-with-bom.txt", lambda path: words(20_000).encode("utf-32"), "completed"),
    Hostile("only-form-feeds.md", lambda path: b"\f" * 200_000, "failed", "no text"),
    Hostile(
        "random-bytes.txt", lambda path: random.Random(1).randbytes(100_000), "refused", ".txt"
    ),
    Hostile("deep-quotes.md", lambda path: b">" * 1_000_000 + b" deep", "completed"),
    Hostile("million-short-lines.txt", lambda path: b"a\n" * 1_000_000, "completed"),
    Hostile(
        "mixed-line-ends.txt",
        lambda path: ("word\r" * 100_000 + "word\r\n" * 100_000 + "word\u2028" * 100_000).encode(),
        "completed",
    ),
]


# --- web pages -------------------------------------------------------------------------------

HTML = [
    Hostile(
        "nested-divs.html",
        lambda path: b"<html><body>" + b"<div>x" * 11_000 + b"</div>" * 11_000 + b"</body></html>",
        "completed",
    ),
    Hostile(
        "dense-tags-at-the-size-limit.html",
        lambda path: b"<div><p>Some <b>bold</b> text<span>x" * (20 * MIB // 36 - 1),
        "completed",
    ),
    Hostile(
        "billion-laughs.html",
        lambda path: (
            b"<!DOCTYPE html [<!ENTITY a0 'ha'>"
            + b"".join(b"<!ENTITY a%d '%s'>" % (n, b"&a%d;" % (n - 1) * 10) for n in range(1, 10))
            + b"]><html><body><p>&a9; laughs</p></body></html>"
        ),
        "completed",
    ),
    Hostile(
        "bogus-charset.html",
        lambda path: b'<meta charset="x-no-such-charset"><p>caf\xc3\xa9</p>',
        "completed",
    ),
    Hostile(
        "nul-and-invalid-bytes.html",
        lambda path: b"<html><body><p>nul\x00 here \xff\xfe and there</p></body></html>" * 100,
        "completed",
    ),
    Hostile(
        "unclosed-everything.html",
        lambda path: b"<table><tr><td><ul><li><pre><b><i>" * 50_000,
        "failed",
        "no text",
    ),
]

CORPUS = PDF + DOCX + TEXT + HTML
