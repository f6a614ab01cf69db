"""Search in the caller's document chunks: PostgreSQL full-text search, or a plain scan.

Both return the same thing, chunks with a ``snippet`` whose matches are wrapped in
``<mark>`` and whose text is HTML-escaped (safe to insert into a page).
"""

import html
import re

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import (
    SearchHeadline,
    SearchQuery,
    SearchRank,
    SearchVectorField,
)
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from documents.models import DocumentChunk, DocumentStatus

SEARCH_CONFIG = "english"
MAX_TERMS = 10
SNIPPET_CHARS = 240
# Control characters cannot occur in normalized text, so they mark matches safely
# until the snippet is escaped and they become <mark> tags.
_MARK_START, _MARK_END = "\x02", "\x03"


def query_terms(query: str) -> list[str]:
    return re.findall(r"\w+", query.lower())[:MAX_TERMS]


def search_chunks(*, user: AbstractBaseUser, query: str) -> QuerySet[DocumentChunk]:
    """``user``'s chunks matching ``query``, best first (PostgreSQL) or in document order."""
    chunks = (
        DocumentChunk.objects.current()
        .filter(document__owner=user, document__status=DocumentStatus.COMPLETED)
        .select_related("document")
    )
    if connection.vendor == "postgresql":
        # websearch syntax: words, "quoted phrases", OR, -excluded.
        search_query = SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        # Stored when the chunk is (documents migration 0004), with a GIN index on it.
        vector = RawSQL(f"{DocumentChunk._meta.db_table}.search_vector", [], SearchVectorField())
        return (
            chunks.annotate(search=vector)
            .filter(search=search_query)
            .annotate(
                rank=SearchRank(vector, search_query),
                headline=SearchHeadline(
                    "text",
                    search_query,
                    config=SEARCH_CONFIG,
                    start_sel=_MARK_START,
                    stop_sel=_MARK_END,
                    min_words=15,
                    max_words=35,
                ),
            )
            .order_by("-rank", "-document__created_at", "index")
        )
    terms = query_terms(query)
    if not terms:
        return chunks.none()
    for term in terms:
        chunks = chunks.filter(text__icontains=term)
    return chunks.order_by("-document__created_at", "document_id", "index")


def snippet(chunk: DocumentChunk, query: str) -> str:
    """The chunk's matching passage, HTML-escaped, with matches in ``<mark>``."""
    marked = getattr(chunk, "headline", None)
    if marked is None:
        marked = _mark_terms(chunk.text, query_terms(query))
    escaped = html.escape(marked)
    return escaped.replace(_MARK_START, "<mark>").replace(_MARK_END, "</mark>")


def _mark_terms(text: str, terms: list[str]) -> str:
    if not terms:
        return text[:SNIPPET_CHARS]
    pattern = re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, (first.start() if first else 0) - SNIPPET_CHARS // 3)
    start = text.rfind(" ", 0, start) + 1 if start else 0  # begin at a word
    window = text[start : start + SNIPPET_CHARS]
    prefix, suffix = ("…" if start else ""), ("…" if start + SNIPPET_CHARS < len(text) else "")
    return prefix + pattern.sub(lambda m: f"{_MARK_START}{m.group(0)}{_MARK_END}", window) + suffix
