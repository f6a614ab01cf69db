"""Overlapping chunks of a document's text, cut while its pages arrive.

The document's full text is its pages' texts joined with "\\n\\n", in order, empty pages
included (an empty page adds just its separator). A chunk's ``start`` and ``end`` are
offsets into that full text: ``full_text[chunk.start:chunk.end] == chunk.text``.
"""

import bisect
import re

from documents.processing import Chunk, Page

PAGE_SEPARATOR = "\n\n"
MIN_SIZE = 50

_NON_SPACE = re.compile(r"\S")
_WORD = re.compile(r"\S+")
_WORD_END = re.compile(r"\S(?=\s)")  # the last character of a word
_WORD_START = re.compile(r"\s\S")  # whitespace, then the first character of a word


class Chunker:
    """Cuts text into chunks of at most ``size`` characters, fed one page at a time.

    A chunk ends at the end of a word if one ends in the last fifth of its window, and
    is cut mid-word otherwise. The next chunk starts ``overlap`` characters before the
    previous end, moved forward to the start of a word if one starts before that end.
    Chunks never begin or end with
    whitespace, and a chunk that would hold nothing new is not made. Only the text not
    yet fully chunked is kept: at most ``size`` characters plus the page being fed.

        chunker = Chunker(size=1000, overlap=200)
        for page in pages:
            save(chunker.feed(page))
        save(chunker.finish())
    """

    def __init__(self, size: int = 1000, overlap: int = 200):
        if size < MIN_SIZE:
            raise ValueError(f"The chunk size must be at least {MIN_SIZE}, not {size}.")
        if not 0 <= overlap < size:
            raise ValueError(f"The overlap must be at least 0 and below {size}, not {overlap}.")
        self.size = size
        self.overlap = overlap
        self._min_length = size - size // 5  # a word-boundary cut keeps at least this much
        self._text = ""  # full_text[self._text_start:], the part not yet fully chunked
        self._text_start = 0
        self._next = 0  # where the next chunk starts (or whitespace before its start)
        self._covered = 0  # the end of the last chunk made
        self._page_offsets: list[int] = []  # where pages start in the full text, ...
        self._page_numbers: list[int] = []  # ... from the one holding self._next onwards
        self._index = 0
        self._pages_fed = 0
        self._finished = False

    def feed(self, page: Page, *, continues_page: bool = False) -> list[Chunk]:
        """Add the next page; returns the chunks that are now complete.

        With ``continues_page``, ``page`` is the next piece of the page fed last: its
        text goes on that page's text, without a page separator.
        """
        if self._finished:
            raise RuntimeError("This Chunker is finished; use a new one for a new document.")
        if continues_page and not self._pages_fed:
            raise ValueError("A page can only be continued after it was fed.")
        self._drop_chunked_text()
        if continues_page:
            self._text += page.text
            return self._cut(final=False)
        separator = PAGE_SEPARATOR if self._pages_fed else ""
        self._page_offsets.append(self._text_start + len(self._text) + len(separator))
        self._page_numbers.append(page.number)
        self._text += separator + page.text
        self._pages_fed += 1
        return self._cut(final=False)

    def finish(self) -> list[Chunk]:
        """The document has no more pages; returns the remaining chunks."""
        if self._finished:
            raise RuntimeError("This Chunker is already finished.")
        self._finished = True
        chunks = self._cut(final=True)
        self._text = ""
        return chunks

    def _cut(self, *, final: bool) -> list[Chunk]:
        text, base = self._text, self._text_start
        available = base + len(text)
        chunks = []
        start = self._next
        while True:
            found = _NON_SPACE.search(text, start - base)
            if found is None:
                start = available
                break
            start = base + found.start()
            if start + self.size < available:
                end = self._cut_point(start)
            elif final:
                end = base + len(text.rstrip())
            else:
                break  # the window is not complete yet: wait for the next page
            if end > self._covered:
                chunks.append(self._make_chunk(start, end))
                self._covered = end
            start = self._next_start(start, end)
        self._next = start
        return chunks

    def _cut_point(self, start: int) -> int:
        """The end of the last word ending in the last fifth of the window, else its end."""
        text, base = self._text, self._text_start
        window_end = start + self.size
        # The lookahead may see text[window_end]: a word ending exactly there fits.
        word_ends = list(
            _WORD_END.finditer(text, start + self._min_length - 1 - base, window_end + 1 - base)
        )
        if word_ends:
            return base + word_ends[-1].end()
        # Mid-word; the window only ends in whitespace if all its last fifth is whitespace.
        return start + len(text[start - base : window_end - base].rstrip())

    def _next_start(self, start: int, end: int) -> int:
        """The start of the first word from ``end - overlap`` on.

        If no word starts there, the overlap is one long word (or text without spaces,
        such as Chinese): the next chunk then starts inside it, right at ``end - overlap``.
        """
        base = self._text_start
        earliest = max(end - self.overlap, start + 1)  # always move forward
        if earliest >= end:
            return end
        found = _WORD_START.search(self._text, earliest - 1 - base, end - base)
        return base + found.start() + 1 if found is not None else earliest

    def _make_chunk(self, start: int, end: int) -> Chunk:
        base = self._text_start
        chunk = Chunk(
            index=self._index,
            text=self._text[start - base : end - base],
            start=start,
            end=end,
            page_start=self._page_at(start),
            page_end=self._page_at(end - 1),
        )
        self._index += 1
        return chunk

    def _page_at(self, offset: int) -> int:
        # Offsets of non-space characters only: those are always inside a page's text.
        return self._page_numbers[bisect.bisect_right(self._page_offsets, offset) - 1]

    def _drop_chunked_text(self) -> None:
        """Forget the text before the next chunk's start, and the pages wholly before it."""
        self._text = self._text[self._next - self._text_start :]
        self._text_start = self._next
        keep_from = max(bisect.bisect_right(self._page_offsets, self._next) - 1, 0)
        del self._page_offsets[:keep_from]
        del self._page_numbers[:keep_from]


def word_count(text: str) -> int:
    """The number of whitespace-separated words (counted without a list of them all)."""
    return sum(1 for _ in _WORD.finditer(text))
