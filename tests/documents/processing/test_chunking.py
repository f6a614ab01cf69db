import random
from itertools import pairwise

import pytest

from documents.processing import Chunk, Page
from documents.processing.chunking import Chunker, word_count

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def chunk_pages(texts: list[str], **options) -> list[Chunk]:
    chunker = Chunker(**options)
    chunks = []
    for number, text in enumerate(texts, start=1):
        chunks += chunker.feed(Page(number=number, text=text))
    return chunks + chunker.finish()


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def random_pages(rng: random.Random) -> list[str]:
    """Pages of words, with the awkward cases mixed in: empty pages, runs of blanks,
    words longer than a chunk."""
    pages = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.15:
            pages.append("")
        elif roll < 0.25:
            pages.append(" \n ")
        else:
            tokens = []
            for _ in range(rng.randint(1, 300)):
                roll = rng.random()
                if roll < 0.05:
                    tokens.append("x" * rng.randint(30, 400))
                elif roll < 0.1:
                    tokens.append(" " * rng.randint(1, 80))
                else:
                    tokens.append(rng.choice(WORDS))
            pages.append(rng.choice([" ", "\n", "\n\n"]).join(tokens))
    return pages


def page_of(texts: list[str], offset: int) -> int:
    position = 0
    for number, text in enumerate(texts, start=1):
        if position <= offset < position + len(text):
            return number
        position += len(text) + 2
    raise AssertionError(f"offset {offset} is in no page")


@pytest.mark.parametrize("seed", range(400))
def test_chunks_are_exact_slices_that_cover_all_text(seed):
    rng = random.Random(seed)
    texts = random_pages(rng)
    size = rng.randint(50, 400)
    overlap = rng.randint(0, size - 1)
    full_text = "\n\n".join(texts)

    chunks = chunk_pages(texts, size=size, overlap=overlap)

    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    covered = [False] * len(full_text)
    for chunk in chunks:
        assert full_text[chunk.start : chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= size
        assert chunk.text == chunk.text.strip()
        assert chunk.page_start == page_of(texts, chunk.start)
        assert chunk.page_end == page_of(texts, chunk.end - 1)
        covered[chunk.start : chunk.end] = [True] * len(chunk.text)
    assert all(covered[i] for i, char in enumerate(full_text) if not char.isspace())
    assert all(a.start < b.start and a.end < b.end for a, b in pairwise(chunks))


@pytest.mark.parametrize("seed", range(50))
def test_chunks_do_not_depend_on_where_pages_break(seed):
    rng = random.Random(seed)
    texts = [text for text in random_pages(rng) if text] or ["one page"]
    whole = "\n\n".join(texts)

    by_page = chunk_pages(texts, size=120, overlap=30)
    at_once = chunk_pages([whole], size=120, overlap=30)

    assert [(c.start, c.end, c.text) for c in by_page] == [
        (c.start, c.end, c.text) for c in at_once
    ]


def test_short_document_is_one_chunk():
    [chunk] = chunk_pages(["  Hello there.  "])
    assert chunk == Chunk(index=0, text="Hello there.", start=2, end=14, page_start=1, page_end=1)


@pytest.mark.parametrize("texts", [[], [""], ["", " \n "]])
def test_document_without_words_has_no_chunks(texts):
    assert chunk_pages(texts) == []


def test_empty_pages_count_in_offsets_and_page_numbers():
    chunks = chunk_pages(["", "second page", "", "fourth page"])

    [chunk] = chunks
    assert (chunk.start, chunk.end) == (2, 28)
    assert chunk.text == "second page\n\n\n\nfourth page"
    assert (chunk.page_start, chunk.page_end) == (2, 4)


def test_chunks_end_at_word_ends_and_overlap_by_about_the_overlap():
    text = words(random.Random(1), 2000)

    chunks = chunk_pages([text], size=200, overlap=50)

    for chunk, following in pairwise(chunks):
        assert 160 <= len(chunk.text) <= 200
        assert text[chunk.end] == " "
        assert text[following.start - 1] == " "
        assert 40 <= chunk.end - following.start <= 50


def test_without_overlap_chunks_follow_each_other():
    text = words(random.Random(2), 500)

    chunks = chunk_pages([text], size=100, overlap=0)

    for chunk, following in pairwise(chunks):
        assert following.start == chunk.end + 1  # just past the space between them


def test_word_longer_than_a_chunk_is_cut_hard_and_still_overlaps():
    chunks = chunk_pages(["x" * 250], size=100, overlap=20)

    assert [(c.start, c.end) for c in chunks] == [(0, 100), (80, 180), (160, 250)]


def test_text_without_spaces_is_cut_hard_and_still_overlaps():
    text = "日本語の文章には空白がありません。" * 20

    chunks = chunk_pages([text], size=100, overlap=20)

    assert [(c.start, c.end) for c in chunks][:2] == [(0, 100), (80, 180)]
    assert "".join(c.text[20:] if c.index else c.text for c in chunks) == text


def test_chunk_spanning_pages_names_both():
    chunks = chunk_pages(["a" * 30, "b" * 30, "c" * 200], size=100, overlap=0)

    assert (chunks[0].page_start, chunks[0].page_end) == (1, 3)
    assert (chunks[-1].page_start, chunks[-1].page_end) == (3, 3)


def test_chunks_are_returned_as_soon_as_they_are_complete():
    chunker = Chunker(size=100, overlap=10)
    rng = random.Random(3)

    assert chunker.feed(Page(number=1, text=words(rng, 5))) == []
    assert len(chunker.feed(Page(number=2, text=words(rng, 200)))) > 5
    assert len(chunker.finish()) >= 1


def test_only_the_text_not_yet_chunked_is_kept():
    chunker = Chunker(size=100, overlap=20)
    rng = random.Random(4)

    for number in range(1, 500):
        chunker.feed(Page(number=number, text=words(rng, 30)))
        assert len(chunker._text) < 100 + 2 + 30 * 8 + 100

    assert len(chunker._page_offsets) <= 3


def test_feeding_a_finished_chunker_is_an_error():
    chunker = Chunker()
    chunker.finish()
    with pytest.raises(RuntimeError):
        chunker.feed(Page(number=1, text="late"))


@pytest.mark.parametrize(("size", "overlap"), [(49, 0), (100, 100), (100, -1), (100, 150), (0, 0)])
def test_invalid_sizes_are_refused(size, overlap):
    with pytest.raises(ValueError):
        Chunker(size=size, overlap=overlap)


def test_smallest_chunker_is_allowed():
    Chunker(size=50, overlap=49)


@pytest.mark.parametrize(
    ("text", "count"), [("", 0), ("   ", 0), ("one", 1), (" one  two\nthree\tfour ", 4)]
)
def test_word_count_counts_whitespace_separated_words(text, count):
    assert word_count(text) == count


@pytest.mark.parametrize("seed", range(50))
def test_page_fed_in_pieces_gives_the_chunks_of_the_whole_page(seed):
    rng = random.Random(seed)
    texts = [text for text in random_pages(rng) if text] or ["one page"]

    whole = chunk_pages(texts, size=120, overlap=30)
    chunker = Chunker(size=120, overlap=30)
    in_pieces = []
    for number, text in enumerate(texts, start=1):
        cuts = sorted(rng.sample(range(len(text) + 1), min(4, len(text) + 1)))
        bounds = [0, *cuts, len(text)]
        for index, (start, end) in enumerate(pairwise(bounds)):
            piece = Page(number=number, text=text[start:end])
            in_pieces += chunker.feed(piece, continues_page=index > 0)
    in_pieces += chunker.finish()

    assert in_pieces == whole


def test_a_page_cannot_be_continued_before_one_was_fed():
    with pytest.raises(ValueError, match="only be continued"):
        Chunker().feed(Page(number=1, text="x"), continues_page=True)
