import time
import zipfile

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
