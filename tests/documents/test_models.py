import pytest
from django.db.models import Q

from documents.models import TRANSITIONS, Document, DocumentStatus

pytestmark = pytest.mark.django_db

ALL_MOVES = [(source, target) for source in DocumentStatus for target in DocumentStatus]


@pytest.mark.parametrize(
    ("source", "target"),
    [move for move in ALL_MOVES if move[1] in TRANSITIONS[move[0]]],
)
def test_allowed_transition_moves_the_document_and_writes_its_fields(user, source, target):
    document = Document.objects.create(owner=user, filename="a.txt", status=source)

    moved = Document.objects.transition(pk=document.pk, to=target, error_message="why")

    document.refresh_from_db()
    assert moved is True
    assert (document.status, document.error_message) == (target, "why")


@pytest.mark.parametrize(
    ("source", "target"),
    [move for move in ALL_MOVES if move[1] not in TRANSITIONS[move[0]]],
)
def test_forbidden_transition_updates_no_row(user, source, target):
    document = Document.objects.create(owner=user, filename="a.txt", status=source)

    moved = Document.objects.transition(pk=document.pk, to=target, error_message="why")

    document.refresh_from_db()
    assert moved is False
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
