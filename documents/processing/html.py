"""The readable text of a web page, collected while lxml's HTML parser reads it.

No tree is built: the parser hands each start tag, end tag and piece of text to
``_PageText`` as it meets them (the events BeautifulSoup builds its tree from), so time
and memory grow linearly with the page, however deeply its elements nest.
"""

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from bs4.dammit import EncodingDetector
from lxml import etree

from documents.processing import Page
from documents.processing.text import decode_text

# Not shown to a reader. <head> goes too, after its <title> is taken.
_HIDDEN_TAGS = ("script", "style", "noscript", "template", "head", "svg", "canvas", "iframe")
# Elements a browser starts on a new line.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p "
    "pre section summary table tbody thead tfoot tr ul".split()
)
# Cells are blocks too, but a row reads better on one line.
_CELL_TAGS = frozenset({"td", "th"})
# Only the runs that change: most whitespace is a single space or line break already.
_LINE_BREAK = re.compile(r"(?=\s\s)\s*\n\s*")
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_NON_SPACE = re.compile(r"\S")
_SEPARATOR_AT_START = {
    "br": "\n",
    **dict.fromkeys(_BLOCK_TAGS, "\n"),
    **dict.fromkeys(_CELL_TAGS, " "),
}
_SEPARATOR_AT_END = {**dict.fromkeys(_BLOCK_TAGS, "\n"), **dict.fromkeys(_CELL_TAGS, " ")}
# The page's text is handed on in fragments of about this many characters (see Page).
FRAGMENT_CHARS = 1024 * 1024
_FEED_CHARS = 64 * 1024


def extract_pages(path: Path, *, encoding: str | None = None) -> Iterator[Page]:
    """The page's text as one ``Page``: its title on the first line, then its blocks.

    ``encoding`` is the charset the server declared, if any. A byte order mark wins over
    it, and it wins over the page's own ``<meta charset>``; without any of them the
    encoding is guessed. Raises ``DocumentError`` when the bytes cannot be decoded. A
    page longer than ``FRAGMENT_CHARS`` comes in several fragments (all numbered 1).
    """
    markup = _decode(Path(path).read_bytes(), declared=encoding)
    collector = _PageText()
    parser = etree.HTMLParser(target=collector, recover=True, no_network=True)
    handed_on = False
    fed = 0  # characters fed since text was last taken: a bound on what was collected
    for start in range(0, len(markup), _FEED_CHARS):
        parser.feed(markup[start : start + _FEED_CHARS])
        fed += _FEED_CHARS
        if fed >= FRAGMENT_CHARS:
            fed = 0
            fragment = collector.take_lines(final=False)
            if fragment:
                yield Page(number=1, text=("\n" if handed_on else "") + fragment)
                handed_on = True
    del markup
    try:
        parser.close()
    except etree.LxmlError:
        pass  # nothing to parse (an empty page): there is no text either
    fragment = collector.take_lines(final=True)
    if fragment or not handed_on:
        yield Page(number=1, text=("\n" if handed_on and fragment else "") + fragment)


class _PageText:
    """A target for lxml's parser: keeps the visible text, with a line break around every
    block element as a browser lays it out, and the first ``<title>`` inside ``<head>``.

    Its methods run once per tag or piece of text, so they do as little as they can.
    """

    def __init__(self):
        self._parts: list[str] = []
        self._title: list[str] | None = None
        self._title_taken = False
        self._in_title = False
        self._hidden_depth = 0  # elements open inside a hidden one, itself included
        self._in_head = False
        self._pre_depth = 0

    def start(self, tag, attrib, nsmap=None) -> None:
        if self._hidden_depth:
            self._hidden_depth += 1
            if tag == "title" and self._in_head and self._title is None:
                self._title, self._in_title = [], True
            return
        separator = _SEPARATOR_AT_START.get(tag)
        if separator is not None:
            self._parts.append(separator)
            if tag == "pre":
                self._pre_depth += 1
        elif tag in _HIDDEN_TAGS:
            self._hidden_depth = 1
            self._in_head = tag == "head"

    def end(self, tag) -> None:
        if self._hidden_depth:
            self._hidden_depth -= 1
            self._in_title = self._in_title and tag != "title"
            self._in_head = self._in_head and self._hidden_depth > 0
            return
        separator = _SEPARATOR_AT_END.get(tag)
        if separator is not None:
            self._parts.append(separator)
            if tag == "pre":
                self._pre_depth -= 1

    def data(self, text: str) -> None:
        if self._hidden_depth:
            if self._in_title:
                self._title.append(text)
        elif self._pre_depth or "\n" not in text:
            self._parts.append(text)
        else:  # line breaks only count inside <pre>; elsewhere they are spaces
            self._parts.append(text.replace("\n", " "))

    def close(self) -> None:
        return None

    def take_lines(self, *, final: bool) -> str:
        """The complete lines collected so far (all of them if ``final``), title first.

        Blank lines go, and within a line runs of whitespace become one space.
        """
        text = "".join(self._parts)
        cut = len(text) if final else text.rfind("\n") + 1
        self._parts = [text[cut:]] if cut < len(text) else []
        text = _collapse_whitespace(text[:cut])
        if not self._title_taken:
            self._title_taken = True
            title = " ".join("".join(self._title or []).split())
            text = f"{title}\n{text}" if title and text else title or text
        return text


def _collapse_whitespace(text: str) -> str:
    """Whitespace with a line break in it becomes one line break, other runs one space.

    The same as joining the non-empty ``" ".join(line.split())`` of each line, without a
    list of every line or word (a page may be one enormous line): the text is rewritten a
    slice at a time, each ending just before a non-space, so no run spans two slices.
    """
    done: list[str] = []
    start = 0
    while start < len(text):
        found = _NON_SPACE.search(text, start + _FEED_CHARS)
        end = found.start() if found else len(text)
        done.append(_SPACES.sub(" ", _LINE_BREAK.sub("\n", text[start:end])))
        start = end
    return "".join(done).strip()


def _decode(data: bytes, *, declared: str | None) -> str:
    for bom, bom_encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            text = _try_decode(data[len(bom) :], bom_encoding)
            return text if text is not None else decode_text(data)
    in_meta = EncodingDetector.find_declared_encoding(data, is_html=True)
    if in_meta and in_meta.lower().replace("_", "-").startswith("utf-16"):
        in_meta = "utf-8"  # a page that can say so in ASCII is not UTF-16 (as browsers rule)
    for encoding in (declared, in_meta):
        if encoding and (text := _try_decode(data, encoding)) is not None:
            return text
    return decode_text(data)


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError):  # an unknown name, or bytes that do not fit
        return None
