"""One form for all extracted text, so chunks and offsets do not depend on the format."""

import re
import unicodedata

# Characters that end a line without being "\n": vertical tab (Word's manual line break
# in some exports), form feed, next line, and the Unicode line and paragraph separators.
_LINE_BREAKS = re.compile("[\x0b\x0c\x85\u2028\u2029]")
# A soft hyphen is an invisible "may break here" inside a word: at a line end it joins
# the word's halves, elsewhere it is dropped (so that "exam\u00adple" is found as "example").
_SOFT_HYPHEN_AT_LINE_END = re.compile("\u00ad[^\\S\n]*\n[^\\S\n]*")
# Control characters (C0 and C1; "\t", "\n" and "\r" are handled before), soft hyphens,
# stray byte order marks, and lone surrogates, which a database cannot store as text.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\ufeff\ud800-\udfff]")
_HORIZONTAL_SPACE_RUN = re.compile(r"[^\S\n]{2,}")
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
# A hyphen that breaks a word over two lines: "exam-\nple".
_HYPHEN_AT_LINE_END = re.compile(r"(?<=[^\W\d_])-\n[^\S\n]*(?=[^\W\d_])")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """``text`` in the one form all stored text has. Pure and idempotent.

    Line ends become "\\n"; tabs become spaces; other control characters are dropped;
    runs of spaces shrink to one; lines lose their trailing spaces; words hyphenated
    across a line end are joined ("exam-\\nple" -> "example") when the second half starts
    with a lower-case letter; more than one blank line shrinks to one; the ends are
    stripped; the result is in Unicode NFC (NFKC would turn "ﬁ" into "fi" but also "²"
    into "2").
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _LINE_BREAKS.sub("\n", text)
    text = text.replace("\t", " ")
    text = _SOFT_HYPHEN_AT_LINE_END.sub("", text)
    text = _INVISIBLE.sub("", text)
    # Composing after removals: a removed character may have stood between a letter and
    # its accent. Composition never creates or removes whitespace or hyphens.
    text = unicodedata.normalize("NFC", text)
    text = _HORIZONTAL_SPACE_RUN.sub(" ", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _HYPHEN_AT_LINE_END.sub(_join_hyphenated, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_hyphenated(match: re.Match[str]) -> str:
    next_letter = match.string[match.end()]
    return "" if next_letter.islower() else match.group()
