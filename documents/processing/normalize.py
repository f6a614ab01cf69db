"""One form for all extracted text, so chunks and offsets do not depend on the format."""

import re
import unicodedata
from collections.abc import Iterable, Iterator

from documents.processing import Page, PagePiece

# Pieces of a long page are normalized one at a time, each at most about this long.
PIECE_CHARS = 256 * 1024
# Where a long page may be cut so that normalizing the parts gives the same text as
# normalizing it whole: at a single line break or space between two letters or digits
# (no rule above looks across such a spot), or, in a line without spaces, between two
# letters or digits (Hangul jamo excepted: composition joins them).
_CLEAN_CUT = re.compile(r"[^\W_]([\n ])(?=[^\W_])")
_CLEAN_CUT_IN_WORD = re.compile(
    r"[^\W_\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff](?=[^\W_\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff])"
)
_CUT_SEARCH_CHARS = 4096

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


def normalized_pieces(
    pages: Iterable[Page], *, piece_chars: int = PIECE_CHARS
) -> Iterator[PagePiece]:
    """Each page's normalized text, in pieces of about ``piece_chars`` at most.

    Fragments of a page (consecutive ``Page``s with one number) are joined first. A page
    longer than ``piece_chars`` is cut at clean spots (see ``_CLEAN_CUT``), so that its
    pieces joined equal ``normalize_text`` of the page; only text with no clean spot at
    all (thousands of symbols in a row) is cut anywhere, which may leave a space or a
    soft hyphen at that cut that whole-page normalization would have removed.
    """
    number = None
    first = True
    pending = ""  # raw text of page ``number`` not yet normalized
    for page in pages:
        if page.number != number:
            if number is not None:
                yield PagePiece(number=number, text=normalize_text(pending), first=first)
            number, pending, first = page.number, page.text, True
        else:
            pending += page.text
        start = 0
        while len(pending) - start > piece_chars:
            end, separator, resume = _cut(pending, start, start + piece_chars)
            yield PagePiece(
                number=number, text=normalize_text(pending[start:end]) + separator, first=first
            )
            first = False
            start = resume
        pending = pending[start:]
    if number is not None:
        yield PagePiece(number=number, text=normalize_text(pending), first=first)


def _cut(text: str, start: int, limit: int) -> tuple[int, str, int]:
    """Where to end a piece of ``text[start:limit]``: (its end, separator, next start)."""
    for pattern in (_CLEAN_CUT, _CLEAN_CUT_IN_WORD):
        window = max(start + 1, limit - _CUT_SEARCH_CHARS)
        while True:
            last = None
            for last in pattern.finditer(text, window, limit):  # noqa: B007 - the last one
                pass
            if last is not None:
                if pattern is _CLEAN_CUT:
                    return last.start() + 1, last.group(1), last.end()
                return last.end(), "", last.end()
            if window == start + 1:
                break
            window = max(start + 1, window - 16 * _CUT_SEARCH_CHARS)
    return limit, "", limit
