"""The readable text of a web page, with BeautifulSoup."""

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from bs4 import BeautifulSoup, CData, NavigableString, Tag
from bs4.dammit import EncodingDetector

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
_WHITESPACE = re.compile(r"\s+")


def extract_pages(path: Path, *, encoding: str | None = None) -> Iterator[Page]:
    """The page's text as one ``Page``: its title on the first line, then its blocks.

    ``encoding`` is the charset the server declared, if any. A byte order mark wins over
    it, and it wins over the page's own ``<meta charset>``; without any of them the
    encoding is guessed. Raises ``DocumentError`` when the bytes cannot be decoded.
    """
    markup = _decode(Path(path).read_bytes(), declared=encoding)
    soup = BeautifulSoup(markup, "lxml")
    title = soup.head.title if soup.head else None
    lines = [" ".join(title.get_text(" ").split())] if title else []
    for tag in soup.find_all(_HIDDEN_TAGS):
        tag.decompose()
    lines.extend(_lines_of(soup))
    yield Page(number=1, text="\n".join(line for line in lines if line))


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


def _lines_of(root: Tag) -> list[str]:
    """The text, with a line break around every block element, as a browser lays it out."""
    parts: list[str] = []
    # Walk without recursion: pages can nest deeper than Python's stack allows.
    stack: list[Tag | NavigableString | str] = [root]
    while stack:
        node = stack.pop()
        if type(node) is str:  # a separator pushed below, to go after an element
            parts.append(node)
        elif isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not comments, doctypes...
                # Line breaks only count inside <pre>; elsewhere they are spaces.
                inside_pre = node.find_parent("pre") is not None
                parts.append(str(node) if inside_pre else _WHITESPACE.sub(" ", node))
        elif node.name == "br":
            parts.append("\n")
        else:
            separator = "\n" if node.name in _BLOCK_TAGS else " "
            if node.name in _BLOCK_TAGS or node.name in _CELL_TAGS:
                parts.append(separator)
                stack.append(separator)
            stack.extend(reversed(node.contents))
    return [" ".join(line.split()) for line in "".join(parts).split("\n")]
