import hashlib
import random
import time
import zipfile
from pathlib import Path

import pytest
from docx import Document

from documents.processing import DocumentError, Page
from documents.processing.docx import check_zip_bomb, extract_pages
from tests.documents import samples

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def rewrite_member(path, name, content: str):
    """Replace one member of the zip at ``path``, keeping the others."""
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members[name] = content.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member_name, data in members.items():
            target.writestr(member_name, data)


def docx_with_body(path, body_xml: str):
    samples.make_docx(path, [["placeholder"]])
    rewrite_member(
        path,
        "word/document.xml",
        f'<w:document xmlns:w="{W}" xmlns:mc="{MC}"><w:body>{body_xml}</w:body></w:document>',
    )
    return path


def texts(path):
    return [page.text for page in extract_pages(path)]


def test_each_page_break_starts_a_new_page(tmp_path):
    path = samples.make_docx(
        tmp_path / "a.docx", [["Intro", "More intro"], ["Middle"], ["End", "The end"]]
    )

    pages = list(extract_pages(path))

    assert [page.number for page in pages] == [1, 2, 3]
    assert [page.text.split("\n") for page in pages] == [
        ["Intro", "More intro", ""],
        ["", "Middle", ""],  # add_page_break() puts the break in a paragraph of its own
        ["", "End", "The end", ""],
    ]


def test_document_without_page_breaks_is_one_page(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["One", "Two"]])
    assert list(extract_pages(path)) == [Page(number=1, text="One\nTwo\n")]


def test_page_break_before_a_paragraph_starts_a_new_page(tmp_path):
    document = Document()
    document.add_paragraph("First").paragraph_format.page_break_before = True
    document.add_paragraph("Still first")
    document.add_paragraph("Second").paragraph_format.page_break_before = True
    document.save(tmp_path / "a.docx")

    # The first paragraph's "page break before" makes no empty page, as in Word.
    assert texts(tmp_path / "a.docx") == ["First\nStill first\n", "Second\n"]


def test_page_break_inside_a_paragraph_splits_it(tmp_path):
    path = docx_with_body(
        tmp_path / "a.docx",
        '<w:p><w:r><w:t>before</w:t><w:br w:type="page"/><w:t>after</w:t></w:r></w:p>',
    )
    assert texts(path) == ["before", "after\n"]


def test_table_text_comes_in_body_order_one_row_per_line(tmp_path):
    path = samples.make_docx(
        tmp_path / "a.docx",
        [["Before the table"], ["Next page"]],
        table=[["Name", "Age"], ["Ada", "36"]],
    )

    first, second = texts(path)

    assert first == "Before the table\nName | Age\nAda | 36\n"
    assert second.strip() == "Next page"


def test_tabs_line_breaks_and_hyperlinks_are_kept_as_text(tmp_path):
    path = docx_with_body(
        tmp_path / "a.docx",
        "<w:p><w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t></w:r>"
        '<w:hyperlink><w:r><w:t xml:space="preserve"> link</w:t></w:r></w:hyperlink></w:p>',
    )
    assert texts(path) == ["a\tb\nc link\n"]


def test_deleted_text_and_text_box_fallbacks_are_left_out(tmp_path):
    path = docx_with_body(
        tmp_path / "a.docx",
        "<w:p><w:r><w:t>kept</w:t></w:r>"
        "<w:del><w:r><w:delText>deleted</w:delText></w:r></w:del>"
        "<w:r><mc:AlternateContent>"
        "<mc:Choice><w:txbxContent><w:p><w:r><w:t>box</w:t></w:r></w:p></w:txbxContent>"
        "</mc:Choice>"
        "<mc:Fallback><w:txbxContent><w:p><w:r><w:t>box</w:t></w:r></w:p></w:txbxContent>"
        "</mc:Fallback>"
        "</mc:AlternateContent></w:r></w:p>",
    )
    [text] = texts(path)
    assert text.split() == ["kept", "box"]


def test_content_controls_are_read(tmp_path):
    path = docx_with_body(
        tmp_path / "a.docx",
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>inside</w:t></w:r></w:p></w:sdtContent></w:sdt>",
    )
    assert texts(path) == ["inside\n"]


def test_truncated_docx_is_reported_as_damaged(tmp_path):
    path = samples.make_truncated_docx(tmp_path / "a.docx")
    with pytest.raises(DocumentError) as caught:
        list(extract_pages(path))
    assert str(caught.value) == "The Word file is damaged (truncated or not a valid .docx)."


def test_malformed_xml_is_reported_as_damaged(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["Hello"]])
    rewrite_member(path, "word/document.xml", "<w:document><w:body><w:p>")
    with pytest.raises(DocumentError, match="The Word file is damaged"):
        list(extract_pages(path))


def test_macro_enabled_document_is_refused_with_a_hint(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["Hello"]])
    with zipfile.ZipFile(path) as archive:
        content_types = archive.read("[Content_Types].xml").decode()
    rewrite_member(
        path,
        "[Content_Types].xml",
        content_types.replace(
            "wordprocessingml.document.main+xml", "ms-word.document.macroEnabled.main+xml"
        ),
    )
    with pytest.raises(DocumentError, match="may be a template or contain macros"):
        list(extract_pages(path))


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """The default 300 MB bomb, made once, and how long making it took."""
    started = time.monotonic()
    path = samples.make_zip_bomb_docx(tmp_path_factory.mktemp("bomb") / "bomb.docx")
    return path, time.monotonic() - started


def test_zip_bomb_is_refused_before_it_is_unpacked(zip_bomb):
    path, _ = zip_bomb
    with pytest.raises(DocumentError) as caught:
        list(extract_pages(path))
    assert str(caught.value) == (
        "The Word file is too large once unpacked: 300 MB, more than the 200 MB allowed."
    )


def test_zip_bomb_under_the_size_limit_is_refused_for_its_compression_ratio(tmp_path):
    path = samples.make_zip_bomb_docx(tmp_path / "bomb.docx", uncompressed_bytes=20 * 2**20)
    with pytest.raises(DocumentError, match=r"compressed \d+ to 1, far more than real"):
        check_zip_bomb(path)


def test_zip_bomb_limits_are_parameters(tmp_path):
    path = samples.make_zip_bomb_docx(tmp_path / "bomb.docx", uncompressed_bytes=20 * 2**20)
    check_zip_bomb(path, max_ratio=10_000)
    with pytest.raises(DocumentError, match="more than the 10 MB allowed"):
        check_zip_bomb(path, max_uncompressed_bytes=10 * 2**20, max_ratio=10_000)


def test_extraction_takes_the_zip_bomb_limits(tmp_path):
    path = samples.make_docx(tmp_path / "a.docx", [["Hello"]])
    with pytest.raises(DocumentError, match="more than the 1 KB allowed"):
        list(extract_pages(path, max_uncompressed_bytes=1024))


def test_ordinary_docx_passes_the_zip_bomb_check(tmp_path):
    check_zip_bomb(samples.make_docx(tmp_path / "a.docx", [["Hello"] * 500] * 3))


def test_zip_bomb_sample_is_quick_to_make_and_small(zip_bomb):
    path, seconds = zip_bomb
    assert seconds < 5
    assert path.stat().st_size < 1024 * 1024


# --- hostile zips and XML ------------------------------------------------------------------


def peak_memory_growth(action) -> int:
    """How far this process's peak resident memory rose above its size at the start, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    before = _status_kib("VmRSS")
    action()
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def refusal(path, **limits) -> str:
    with pytest.raises(DocumentError) as caught:
        list(extract_pages(path, **limits))
    return str(caught.value)


def test_part_that_unpacks_to_more_than_it_declares_is_stopped_early(tmp_path):
    # The shape from issue 8: 1 KB declared, 1 GiB real, 1 MB on disk.
    path = samples.make_under_declared_docx(tmp_path / "a.docx", real_bytes=2**30)
    messages = []

    growth = peak_memory_growth(lambda: messages.append(refusal(path)))

    assert growth < 32 * 2**20
    assert messages == [
        "The Word file's part word/document.xml holds more bytes than its zip directory "
        "declares; reading stopped there, as files like this are used to exhaust servers."
    ]


def test_archive_with_too_many_parts_is_refused(tmp_path):
    paragraphs = samples.word_xml(samples.word_paragraphs(["Hello"]))
    extra = [samples.zip_member(f"word/media/{n}.bin", b"x") for n in range(5001)]
    path = samples.write_zip(tmp_path / "a.docx", samples.word_package(paragraphs, *extra))

    assert refusal(path) == (
        "The Word file holds 5004 parts, more than the 5000 allowed; it was not opened, as "
        "files like this are used to exhaust servers."
    )


def test_entries_sharing_their_bytes_are_refused(tmp_path):
    # Fifield's overlapping-entry bomb: many directory entries, one compressed stream.
    members = samples.word_package(samples.word_xml(samples.word_paragraphs(["Hi"])))
    members += [
        samples.ZipMember(f"word/media/{n}.xml", b"", 0, 0, shares_data_of="word/document.xml")
        for n in range(3)
    ]
    path = samples.write_zip(tmp_path / "a.docx", members)

    assert "parts overlap" in refusal(path)


def test_part_named_twice_is_refused(tmp_path):
    members = samples.word_package(samples.word_xml(samples.word_paragraphs(["One"])))
    members.append(samples.zip_member("word/document.xml", b"<other/>"))
    path = samples.write_zip(tmp_path / "a.docx", members)

    assert "names the part word/document.xml twice" in refusal(path)


def test_part_larger_than_the_limit_is_refused_before_it_is_unpacked(tmp_path):
    paragraphs = samples.word_paragraphs(["word " * 100] * 100)
    path = samples.write_zip(
        tmp_path / "a.docx", samples.word_package(samples.word_xml(paragraphs))
    )

    assert "more than the 10 KB allowed" in refusal(path, max_uncompressed_bytes=10 * 1024)


@pytest.mark.parametrize(
    "prolog",
    [
        # "Billion laughs": each entity ten of the one before.
        "<!DOCTYPE d [<!ENTITY a0 'ha'>"
        + "".join(f"<!ENTITY a{n} '{f'&a{n - 1};' * 10}'>" for n in range(1, 10))
        + "]>",
        # XXE: an entity that reads a file of the server.
        '<!DOCTYPE d [<!ENTITY canary SYSTEM "file:///etc/hostname">]>',
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_xml_with_a_document_type_declaration_is_refused(tmp_path, prolog):
    body = samples.word_paragraphs(["&a9;" if "a9" in prolog else "&canary;"])
    path = samples.write_zip(
        tmp_path / "a.docx", samples.word_package(samples.word_xml(body, prolog=prolog))
    )

    assert refusal(path) == (
        "The Word file contains a document type declaration, which Word never writes; it "
        "was not read, as files like this are used to attack servers."
    )


def test_document_type_declaration_in_a_package_part_is_refused(tmp_path):
    members = samples.word_package(samples.word_xml(samples.word_paragraphs(["Hi"])))
    rels = samples.WORD_RELS_XML.replace("?>", "?><!DOCTYPE r [<!ENTITY x 'y'>]>", 1)
    members[1] = samples.zip_member("_rels/.rels", rels.encode())
    path = samples.write_zip(tmp_path / "a.docx", members)

    assert "document type declaration" in refusal(path)


def test_large_document_is_read_in_fragments_with_little_memory(tmp_path):
    vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "omega", "sigma", "kappa"]
    words = random.Random(0).choices(vocabulary, k=4_000_000)
    paragraphs = [" ".join(words[start : start + 200]) for start in range(0, len(words), 200)]
    document_xml = samples.word_xml(samples.word_paragraphs(paragraphs))
    members = samples.word_package(b"")
    members[2] = samples.zip_member("word/document.xml", document_xml, level=1)
    path = samples.write_zip(tmp_path / "a.docx", members)
    assert len(document_xml) > 20 * 2**20
    numbers, text = [], hashlib.sha256()

    def read_all() -> None:
        for fragment in extract_pages(path):  # kept only as a hash: memory is measured
            numbers.append(fragment.number)
            text.update(fragment.text.encode())

    growth = peak_memory_growth(read_all)

    assert growth < 16 * 2**20
    assert set(numbers) == {1}
    assert len(numbers) > 10
    assert text.digest() == hashlib.sha256(("\n".join(paragraphs) + "\n").encode()).digest()
