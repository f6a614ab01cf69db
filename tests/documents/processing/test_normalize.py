import random
import unicodedata

import pytest

from documents.processing import Page, PagePiece
from documents.processing.normalize import normalize_text, normalized_pieces

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # hypothesis is optional; the seeded cases below cover the same ground
    given = None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  padded  ", "padded"),
        ("windows\r\nline\rends", "windows\nline\nends"),
        ("tab\tseparated", "tab separated"),
        ("many     spaces", "many spaces"),
        ("trailing   \nspaces \t\n", "trailing\nspaces"),
        ("exam-\nple", "example"),
        ("exam-  \n   ple", "example"),
        ("soft\u00ad\nhyphen and in\u00adside", "softhyphen and inside"),
        ("well-\nKnown Name", "well-\nKnown Name"),  # a capital: probably a real hyphen
        ("1990-\n2000", "1990-\n2000"),
        ("one\n\n\n\n\ntwo", "one\n\ntwo"),
        ("one\n \n\t\n  \ntwo", "one\n\ntwo"),
        ("bell\x07 and nul\x00 and del\x7f gone", "bell and nul and del gone"),
        ("vertical\x0btab and form\x0cfeed", "vertical\ntab and form\nfeed"),
        ("line\u2028separator", "line\nseparator"),
        ("\ufeffbom", "bom"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("caf\u0065\u0301", "café"),  # e + combining acute -> é (NFC)
        (
            "\ufb01le x\u00b2",
            "\ufb01le x\u00b2",
        ),  # the ligature and the superscript stay (not NFKC)
        ("keeps\u00a0no-break space", "keeps\u00a0no-break space"),
        ("", ""),
    ],
)
def test_normalize_text(raw, normal):
    assert normalize_text(raw) == normal


def test_accent_separated_from_its_letter_by_a_control_character_is_composed():
    assert normalize_text("e\x01\u0301") == "é"


ALPHABET = (
    "ab cdE-\n\n\r\t\x00\x07\x0b\x0c\x85\u00a0\u00ad\u2028\u200b\ufeff\u0301\u0065é\ufb01"
    "\ud800-  x\n\n\n"
)


@pytest.mark.parametrize("seed", range(300))
def test_normalizing_twice_changes_nothing(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 80)))

    once = normalize_text(text)

    assert normalize_text(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert "\r" not in once and "\t" not in once
    assert once == once.strip()


if given is not None:

    @given(st.text())
    def test_normalizing_any_text_twice_changes_nothing(text):
        once = normalize_text(text)
        assert normalize_text(once) == once


# --- long pages, normalized in pieces --------------------------------------------------------

PIECE_ALPHABET = [*ALPHABET, "word ", "word\n", "x-\ny", "ex-\nAmple", "中文", "\u1100\u1161"]


def fragments_of(rng: random.Random, number: int, text: str) -> list[Page]:
    cuts = sorted(rng.sample(range(1, len(text)), min(5, len(text) - 1))) if len(text) > 1 else []
    bounds = [0, *cuts, len(text)]
    return [Page(number, text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("seed", range(300))
def test_pieces_of_a_page_join_to_its_normalized_text(seed):
    rng = random.Random(seed)
    # A word every fourth token: every piece has a clean place to be cut (text without
    # any is cut anywhere, and may then differ at that cut; see normalized_pieces).
    pages = [
        "".join(
            "word " if index % 4 == 3 else rng.choice(PIECE_ALPHABET)
            for index in range(rng.randint(0, 200))
        )
        for _ in range(rng.randint(1, 3))
    ]
    fragments = [f for n, text in enumerate(pages, 1) for f in fragments_of(rng, n, text)]

    pieces = list(normalized_pieces(fragments, piece_chars=rng.randint(40, 80)))

    for number, text in enumerate(pages, start=1):
        own = [piece for piece in pieces if piece.number == number]
        assert [piece.first for piece in own] == [True] + [False] * (len(own) - 1)
        assert "".join(piece.text for piece in own) == normalize_text(text)


def test_long_page_is_cut_at_a_line_break_or_space_between_words():
    text = ("word " * 30 + "\n") * 10

    pieces = list(normalized_pieces([Page(1, text)], piece_chars=100))

    assert len(pieces) > 5
    assert all(piece.text.endswith((" ", "\n")) for piece in pieces[:-1])
    assert all(len(piece.text) <= 100 for piece in pieces)


def test_line_without_any_space_is_cut_between_letters():
    pieces = list(normalized_pieces([Page(1, "x" * 1000)], piece_chars=100))

    assert "".join(piece.text for piece in pieces) == "x" * 1000
    assert max(len(piece.text) for piece in pieces) <= 100


def test_empty_pages_are_pieces_too():
    pages = [Page(1, ""), Page(2, "two"), Page(3, " ")]
    assert list(normalized_pieces(pages)) == [
        PagePiece(1, "", True),
        PagePiece(2, "two", True),
        PagePiece(3, "", True),
    ]
