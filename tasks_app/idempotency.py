"""Idempotency-Key: a repeated submission answers with what the first one made.

Submit services call ``create_once`` with the owner's rows of a model that keeps
``idempotency_key``, ``request_fingerprint`` and ``created_at`` (task records for single
submits, task batches for batches).
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError
from django.db.models import Model, QuerySet
from django.utils import timezone

from tasks_app.errors import IdempotencyKeyInvalid, IdempotencyKeyReused

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 255
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def create_once(*, keyed: QuerySet, key: str, fingerprint: str, create: Callable[..., Model]):
    """``create(idempotency_key=key, request_fingerprint=fingerprint)`` unless ``keyed``
    already holds a row under ``key``: (row, replayed).

    ``keyed`` is the owner's rows of a model with ``idempotency_key``,
    ``request_fingerprint`` and ``created_at``; ``create`` stores both with its row, in a
    transaction of its own (a service under ``@transaction.atomic``), so that a concurrent
    request that took the key first rolls it back whole (the key's unique constraint). A
    key older than the TTL is free again.
    """
    expired_before = timezone.now() - timedelta(seconds=settings.TASKS_IDEMPOTENCY_TTL_SECONDS)
    for _ in range(2):
        existing = keyed.filter(idempotency_key=key).first()
        if existing is not None and existing.created_at < expired_before:
            # Past the TTL: the old row lets go of the key (a write only when one expired).
            keyed.filter(pk=existing.pk, idempotency_key=key).update(idempotency_key=None)
            existing = None
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused(key=key)
            logger.info("submission replayed id=%s key=%s", existing.pk, key)
            return existing, True
        try:
            # The key goes in with the row: no UPDATE after it, and no savepoint around
            # ``create``'s own transaction.
            return create(idempotency_key=key, request_fingerprint=fingerprint), False
        except IntegrityError:
            continue  # a concurrent request with the same key won; return what it made
    raise IdempotencyKeyReused(key=key)


def idempotency_key_clean(raw_key: str) -> str:
    """The key without surrounding blanks; raises ``IdempotencyKeyInvalid`` if unusable."""
    key = raw_key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise IdempotencyKeyInvalid(
            f"Ensure this header has no more than {IDEMPOTENCY_KEY_MAX_LENGTH} characters."
        )
    # The key is stored and may be logged: no NUL (PostgreSQL refuses it), no line breaks.
    if _CONTROL_CHARACTER.search(key):
        raise IdempotencyKeyInvalid("Use printable characters only, no control characters.")
    return key


def request_fingerprint(submission: dict | list) -> str:
    """A digest of what was submitted under a key, to tell a replay from a reuse."""
    encoded = json.dumps(submission, sort_keys=True, cls=DjangoJSONEncoder)
    return hashlib.sha256(encoded.encode()).hexdigest()
