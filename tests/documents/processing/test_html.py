import random
import time

import pytest

from documents.processing import DocumentError, Page
from documents.processing.html import extract_pages

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>The   Title</title>
  <meta name="description" content="not shown">
  <style>p { color: red }</style>
  <script>var hidden = "script";</script>
</head>
<body>
  <!-- a comment -->
  <nav><ul><li>Home</li><li>About</li></ul></nav>
  <h1>Heading</h1>
  <p>A paragraph
     with <b>bold</b> and <a href="#">a link</a>.</p>
  <div>Line one<br>Line two</div>
  <table><tr><th>Name</th><td>Ada</td></tr></table>
  <noscript>Enable JavaScript</noscript>
  <template><p>Not rendered</p></template>
  <script>document.write("also hidden")</script>
</body>
</html>
"""


def extract(tmp_path, markup, *, encoding=None, raw: bytes | None = None):
    path = tmp_path / "page.html"
    path.write_bytes(raw if raw is not None else markup.encode("utf-8"))
    return list(extract_pages(path, encoding=encoding))


def test_page_is_its_title_then_its_blocks_one_per_line(tmp_path):
    assert extract(tmp_path, PAGE) == [
        Page(
            number=1,
            text="The Title\nHome\nAbout\nHeading\nA paragraph with bold and a link.\n"
            "Line one\nLine two\nName Ada",
        )
    ]


@pytest.mark.parametrize(
    "hidden", ["not shown", "script", "also hidden", "Enable JavaScript", "Not rendered", "comment"]
)
def test_hidden_parts_are_left_out(tmp_path, hidden):
    [page] = extract(tmp_path, PAGE)
    assert hidden not in page.text


def test_page_without_title_starts_with_its_body(tmp_path):
    [page] = extract(tmp_path, "<p>Only body</p>")
    assert page.text == "Only body"


def test_meta_charset_is_honoured(tmp_path):
    markup = '<html><head><meta charset="windows-1252"></head><body><p>Café €5</p></body>'
    [page] = extract(tmp_path, markup, raw=markup.encode("cp1252"))
    assert page.text == "Café €5"


def test_declared_encoding_wins_over_meta_charset(tmp_path):
    markup = '<html><head><meta charset="utf-8"></head><body><p>Grüße</p></body>'
    [page] = extract(tmp_path, markup, encoding="latin-1", raw=markup.encode("latin-1"))
    assert page.text == "Grüße"


def test_meta_charset_utf16_on_an_ascii_page_means_utf8(tmp_path):
    markup = '<html><head><meta charset="utf-16"></head><body><p>Grüße</p></body>'
    [page] = extract(tmp_path, markup)
    assert page.text == "Grüße"


def test_page_with_a_byte_order_mark_is_decoded_by_it(tmp_path):
    markup = '<html><head><meta charset="latin-1"></head><body><p>Grüße</p></body>'
    [page] = extract(tmp_path, markup, encoding="latin-1", raw=markup.encode("utf-8-sig"))
    assert page.text == "Grüße"


def test_encoding_is_guessed_when_nothing_declares_it(tmp_path):
    markup = "<p>Café crème, garçon, naïve résumé façade.</p>" * 3
    [page] = extract(tmp_path, markup, raw=markup.encode("latin-1"))
    assert page.text.split("\n") == ["Café crème, garçon, naïve résumé façade."] * 3


def test_preformatted_text_keeps_its_lines(tmp_path):
    [page] = extract(tmp_path, "<pre>first line\nsecond line</pre>")
    assert page.text == "first line\nsecond line"


def test_undecodable_page_is_refused(tmp_path):
    with pytest.raises(DocumentError, match="character encoding could not be recognised"):
        extract(tmp_path, "", raw=random.Random(0).randbytes(5000))


# --- hostile pages: time and memory linear in the page ---------------------------------------


def test_deeply_nested_page_is_read_in_linear_time(tmp_path):
    # The page from issue 8: 130 KB of nested <div>s took 34 s of CPU.
    depth = 130 * 1024 // len("<div>x</div>")
    markup = "<html><body>" + "<div>x" * depth + "</div>" * depth + "</body></html>"
    started = time.process_time()

    [page] = extract(tmp_path, markup)

    assert time.process_time() - started < 5  # about 0.02 s; it took 15-35 s
    assert page.text == "\n".join(["x"] * depth)


def test_page_at_the_download_limit_is_read_in_seconds(tmp_path, settings):
    unit = "<div><p>Some <b>bold</b> text<span>x"  # dense tags, never closed
    markup = unit * (settings.DOCUMENTS_FETCH_MAX_BYTES // len(unit))
    started = time.process_time()

    fragments = extract(tmp_path, markup)

    assert time.process_time() - started < 10  # about 2 s on a CI machine
    assert len(fragments) > 1
    assert "".join(fragment.text for fragment in fragments).count("Some bold textx") == len(
        markup
    ) // len(unit)


def test_long_page_comes_in_fragments_that_join_to_its_text(tmp_path):
    paragraphs = [f"Paragraph {n} " + "word " * 30 for n in range(40_000)]
    markup = "<title>Long</title>" + "".join(f"<p>{text}</p>" for text in paragraphs)

    fragments = extract(tmp_path, markup)

    assert len(fragments) > 2
    assert {fragment.number for fragment in fragments} == {1}
    assert "".join(fragment.text for fragment in fragments) == "\n".join(
        ["Long"] + [" ".join(text.split()) for text in paragraphs]
    )
