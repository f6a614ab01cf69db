import pytest
from django.db.models import Q

from documents.models import TRANSITIONS, Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("source", DocumentStatus.values)
@pytest.mark.parametrize("target", DocumentStatus.values)
def test_transition_moves_a_document_only_where_the_table_allows(user, source, target):
    document = Document.objects.create(owner=user, filename="a.txt", status=source)
    allowed = target in TRANSITIONS[source]

    moved = Document.objects.transition(pk=document.pk, to=target, error_message="why")

    document.refresh_from_db()
    assert moved is allowed
    if allowed:
        assert (document.status, document.error_message) == (target, "why")
    else:  # no row updated: neither the status nor the other fields
        assert (document.status, document.error_message) == (source, "")


def test_the_table_names_every_status_and_only_statuses():
    assert set(TRANSITIONS) == set(DocumentStatus.values)
    assert all(targets <= set(DocumentStatus.values) for targets in TRANSITIONS.values())


def test_transition_that_misses_its_extra_condition_updates_no_row(user, other_user):
    document = Document.objects.create(owner=user, filename="a.txt")

    moved = Document.objects.transition(
        pk=document.pk, to=DocumentStatus.PROCESSING, only_if=Q(owner=other_user)
    )

    document.refresh_from_db()
    assert moved is False
    assert document.status == DocumentStatus.QUEUED


def test_transition_moves_only_the_document_named(user):
    first = Document.objects.create(owner=user, filename="a.txt")
    second = Document.objects.create(owner=user, filename="b.txt")

    assert Document.objects.transition(pk=first.pk, to=DocumentStatus.CANCELLED)

    second.refresh_from_db()
    assert second.status == DocumentStatus.QUEUED


def test_transition_of_a_deleted_document_is_false(user):
    document = Document.objects.create(owner=user, filename="a.txt")
    document_id = document.pk
    document.delete()

    assert Document.objects.transition(pk=document_id, to=DocumentStatus.PROCESSING) is False
