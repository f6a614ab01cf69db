import random

import pytest

from documents.processing import DocumentError, Page
from documents.processing.text import FRAGMENT_CHARS, decode_text, extract_pages
from tests.documents import samples
from tests.documents.processing.test_docx import peak_memory_growth

FRENCH = "Café crème, garçon, naïve résumé façade.\n" * 4
# Short mixed texts like this one came back as Baltic cp1257 ("déją vu") from
# charset-normalizer's own first choice.
MIXED = "Café crème für naïve façades.\nÀ bientôt, garçon ? déjà vu.\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
def test_accented_text_is_decoded_in_its_encoding(tmp_path, encoding):
    path = samples.make_text(tmp_path / "a.txt", FRENCH, encoding)
    assert list(extract_pages(path)) == [Page(number=1, text=FRENCH)]


@pytest.mark.parametrize("repeat", [1, 3, 20])
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_short_western_text_is_read_as_western(encoding, repeat):
    assert decode_text((MIXED * repeat).encode(encoding)) == MIXED * repeat


def test_byte_order_mark_is_not_part_of_the_text():
    assert decode_text("\ufeffHello".encode("utf-8")) == "Hello"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.\n" * 3, "cp1250"),
        ("Съешь же ещё этих мягких французских булок, да выпей чаю.\n" * 3, "cp1251"),
        ("Příliš žluťoučký kůň úpěl ďábelské ódy.\n" * 3, "cp1250"),
        ("Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.\n" * 3, "cp1253"),
        ("日本語のテキストです。これはテストです。\n" * 3, "shift_jis"),
    ],
)
def test_other_legacy_encodings_are_recognised(text, encoding):
    assert decode_text(text.encode(encoding)) == text


def test_form_feeds_split_pages(tmp_path):
    path = samples.make_text(tmp_path / "a.txt", "one\fpage two\n\f\fpage four")

    pages = list(extract_pages(path))

    assert pages == [
        Page(number=1, text="one"),
        Page(number=2, text="page two\n"),
        Page(number=3, text=""),
        Page(number=4, text="page four"),
    ]


def test_empty_file_is_one_empty_page(tmp_path):
    path = samples.make_text(tmp_path / "a.txt", "")
    assert list(extract_pages(path)) == [Page(number=1, text="")]


def test_bytes_in_no_encoding_are_refused(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(random.Random(0).randbytes(5000))
    with pytest.raises(DocumentError) as caught:
        list(extract_pages(path))
    assert str(caught.value) == (
        "The text's character encoding could not be recognised; "
        "save it as UTF-8 and upload it again."
    )


def test_decode_text_of_nothing_is_empty():
    assert decode_text(b"") == ""


def test_sample_text_saves_characters_its_encoding_lacks_as_question_marks(tmp_path):
    path = samples.make_text(tmp_path / "a.txt", "Café — déjà vu.\n" * 3, "latin-1")
    [page] = extract_pages(path)
    assert page.text == "Café ? déjà vu.\n" * 3


def test_large_text_is_read_in_fragments_with_little_memory(tmp_path):
    line = "Lorem ipsum dolor sit amet, café consectetur adipiscing elit.\n"
    path = samples.make_text(tmp_path / "a.txt", line * 500_000 + "\f" + line, "cp1252")
    lengths = []

    growth = peak_memory_growth(
        lambda: lengths.extend(len(page.text) for page in extract_pages(path))
    )

    assert growth < 16 * 2**20
    assert len(lengths) > 10  # fragments of page 1, then page 2
    assert sum(lengths) == len(line) * 500_001


def test_fragments_of_a_long_page_share_its_number(tmp_path):
    text = "x" * (FRAGMENT_CHARS + 10) + "\fend"
    pages = list(extract_pages(samples.make_text(tmp_path / "a.txt", text)))

    assert [(page.number, len(page.text)) for page in pages] == [
        (1, FRAGMENT_CHARS),
        (1, 10),
        (2, 3),
    ]


def test_bytes_the_first_mib_did_not_show_are_decoded_too(tmp_path):
    # The first MiB reads as Windows-1252; much later come bytes that it leaves undefined.
    path = tmp_path / "a.txt"
    path.write_bytes("Café crème.\n".encode("cp1252") * 200_000 + b"Fin \x81\x8d\x8f\x90\x9d")

    text = "".join(page.text for page in extract_pages(path))

    assert text.startswith("Café crème.\nCafé crème.\n")
    assert text.endswith("Fin \x81\x8d\x8f\x90\x9d")  # Latin-1: control characters


def test_odd_bytes_after_a_first_mib_of_plain_ascii_are_decoded_too(tmp_path):
    # The first MiB says nothing but ASCII; the encoding is judged by the lines around the
    # first byte that is not UTF-8 as well.
    path = tmp_path / "a.txt"
    path.write_bytes(b"plain ascii words\n" * 100_000 + "Fin, café.\n".encode("cp1252"))

    text = "".join(page.text for page in extract_pages(path))

    assert text.endswith("Fin, café.\n")
