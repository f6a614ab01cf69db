"""Read paths of documents. Every query starts from the caller's own documents."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from documents.models import Document, DocumentChunk


def document_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Document]:
    return Document.objects.filter(owner=user).select_related("task").order_by("-created_at", "-id")


def document_get_for_user(*, user: AbstractBaseUser, document_id: str) -> Document | None:
    """One of ``user``'s documents, or None: unknown, malformed and others' ids look alike."""
    try:
        pk = uuid.UUID(str(document_id))
    except ValueError:
        return None
    return document_list_for_user(user=user).filter(pk=pk).first()


def document_chunks(*, document: Document) -> QuerySet[DocumentChunk]:
    """The document's current chunks: not those a processing run is still storing."""
    return DocumentChunk.objects.filter(
        document=document, generation=document.chunks_generation
    ).order_by("index")
