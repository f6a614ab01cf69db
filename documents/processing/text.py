"""Plain text and Markdown, in whatever character encoding they were saved.

Files are read as a stream: the encoding is chosen from a byte order mark, from one pass
checking whether all the bytes are UTF-8, or else from the file's first MiB (and a pass
checking that the whole file fits it), and the text is then decoded a fragment at a
time, so memory does not grow with the file.
"""

import codecs
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
# A page's text is handed on in fragments of at most this many characters (see Page).
FRAGMENT_CHARS = 1024 * 1024
_SAMPLE_BYTES = 1024 * 1024
_READ_BYTES = 1024 * 1024
_MAX_CANDIDATES = 5  # each one tried costs a pass over the file
# UTF-32's marks first: the little-endian one starts with UTF-16's.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_UNRECOGNISED = (
    "The text's character encoding could not be recognised; save it as UTF-8 and upload it again."
)


def extract_pages(path: Path) -> Iterator[Page]:
    """The text's pages: it is split at form feeds (``\\f``); without any it is one page.

    The text is raw (line ends as in the file): normalise it before chunking. A page
    longer than ``FRAGMENT_CHARS`` comes in several ``Page`` fragments with the same
    number. Raises ``DocumentError`` when no encoding fits all of the file.
    """
    encoding = _file_encoding(path)
    number = 1
    unseen = True  # page ``number`` has not been handed on yet
    try:
        with open(path, encoding=encoding, newline="") as text:
            while fragment := text.read(FRAGMENT_CHARS):
                for index, part in enumerate(fragment.split("\f")):
                    if index:  # a form feed ended the page before
                        if unseen:
                            yield Page(number=number, text="")
                        number += 1
                        unseen = True
                    if part:
                        yield Page(number=number, text=part)
                        unseen = False
    except UnicodeDecodeError as exc:  # the sample's encoding did not fit a later part
        raise DocumentError(_UNRECOGNISED) from exc
    if unseen:
        yield Page(number=number, text="")


def _file_encoding(path: Path) -> str:
    with open(path, "rb") as stream:
        head = stream.read(len(_BYTE_ORDER_MARKS[0][0]))
    for mark, encoding in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return encoding
    invalid_at = _first_invalid_utf8(path)
    if invalid_at is None:
        return "utf-8"
    sample, whole_file = _sample(path, around=invalid_at)
    # The sample is not the whole file: the first candidate that fits all of it wins, as
    # charset-normalizer's own choice would on the whole file.
    for encoding in _candidates(charset_normalizer.from_bytes(sample))[:_MAX_CANDIDATES]:
        if whole_file or _decodes_whole_file(path, encoding):
            return encoding
    raise DocumentError(_UNRECOGNISED)


def _first_invalid_utf8(path: Path) -> int | None:
    """Where the first byte that is not UTF-8 is, in one pass; ``None`` if there is none."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as stream:
        try:
            while data := stream.read(_READ_BYTES):
                decoder.decode(data)
                offset += len(data)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            return max(0, offset + error.start - len(decoder.getstate()[0]))
    return None


def _sample(path: Path, *, around: int) -> tuple[bytes, bool]:
    """The file's start and the lines around byte ``around``; and whether that is all of it.

    Slices end at line ends, so that no character is cut in half.
    """
    half = _SAMPLE_BYTES // 2
    with open(path, "rb") as stream:
        data = stream.read(_SAMPLE_BYTES + 1)
        if len(data) <= _SAMPLE_BYTES:
            return data, True
        head = _whole_lines(data[:half], keep_start=True)
        stream.seek(max(0, around - half // 2))
        middle = _whole_lines(stream.read(half), keep_start=around <= half // 2)
    return head + b"\n" + middle, False


def _whole_lines(data: bytes, *, keep_start: bool) -> bytes:
    start = 0 if keep_start or b"\n" not in data else data.index(b"\n") + 1
    end = data.rindex(b"\n") + 1 if b"\n" in data[start:] else len(data)
    return data[start:end]


def _decodes_whole_file(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as stream:
        try:
            while data := stream.read(_READ_BYTES):
                decoder.decode(data)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


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


def _candidates(matches: CharsetMatches) -> list[str]:
    """Encodings that fit, in ``_best``'s order: first the preferred ones any match could
    be (all of a match's encodings read its bytes alike), then the matches' own."""
    names = [
        encoding
        for encoding in _PREFERRED
        if any(encoding in match.could_be_from_charset for match in matches)
    ]
    best = matches.best()
    ordered = ([best] if best is not None else []) + list(matches)
    return names + [match.encoding for match in ordered if match.encoding not in names]
