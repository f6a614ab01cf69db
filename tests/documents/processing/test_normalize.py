import random
import unicodedata

import pytest

from documents.processing.normalize import normalize_text

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
