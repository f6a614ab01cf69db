"""Plain text and Markdown, in whatever character encoding they were saved."""

from collections.abc import Iterator
from pathlib import Path

import charset_normalizer
from charset_normalizer.models import CharsetMatch, CharsetMatches

from documents.processing import DocumentError, Page

# charset-normalizer's choice among single-byte code pages is unreliable on short texts:
# Latin-1 French came back as Central European cp1250 ("crčme") or Baltic cp1257 ("déją
# vu"). Windows-1252 (a superset of Latin-1) is the likeliest legacy encoding for our
# users, and texts in other code pages (Polish, Czech, Russian, Greek, CJK...) are not
# even offered as Windows-1252 candidates in our tests, so when it is offered we take it.
# UTF-8 and ASCII come first: bytes that are valid UTF-8 are almost surely meant as such.
_PREFERRED = ("utf_8", "ascii", "cp1252", "latin_1", "iso8859_15")
_UNRECOGNISED = (
    "The text's character encoding could not be recognised; save it as UTF-8 and upload it again."
)


def extract_pages(path: Path) -> Iterator[Page]:
    """The text's pages: it is split at form feeds (``\\f``); without any it is one page.

    The text is raw (line ends as in the file): normalise it before chunking.
    """
    text = _decode(charset_normalizer.from_path(path), empty=Path(path).stat().st_size == 0)
    for number, page_text in enumerate(text.split("\f"), start=1):
        yield Page(number=number, text=page_text)


def decode_text(data: bytes) -> str:
    """``data`` decoded with the encoding it most likely has (a byte order mark wins).

    Raises ``DocumentError`` when no encoding fits.
    """
    return _decode(charset_normalizer.from_bytes(data), empty=not data)


def _decode(matches: CharsetMatches, *, empty: bool) -> str:
    if empty:
        return ""
    match = _best(matches)
    if match is None:
        raise DocumentError(_UNRECOGNISED)
    return str(match)


def _best(matches: CharsetMatches) -> CharsetMatch | None:
    for encoding in _PREFERRED:
        for match in matches:
            if encoding in match.could_be_from_charset:
                return match
    return matches.best()
