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
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from tasks_app.errors import IdempotencyKeyInvalid, IdempotencyKeyReused

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = 255
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def create_once(*, keyed: QuerySet, key: str, fingerprint: str, create: Callable[[], Model]):
    """``create()`` unless ``keyed`` already holds a row under ``key``: (row, replayed).

    ``keyed`` is the owner's rows of a model with ``idempotency_key``,
    ``request_fingerprint`` and ``created_at``. A key older than the TTL is free again.
    """
    expired_before = timezone.now() - timedelta(seconds=settings.TASKS_IDEMPOTENCY_TTL_SECONDS)
    keyed.filter(idempotency_key=key, created_at__lt=expired_before).update(idempotency_key=None)
    for _ in range(2):
        existing = keyed.filter(idempotency_key=key).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused(key=key)
            logger.info("submission replayed id=%s key=%s", existing.pk, key)
            return existing, True
        try:
            with transaction.atomic():
                created = create()
                keyed.filter(pk=created.pk).update(
                    idempotency_key=key, request_fingerprint=fingerprint
                )
            return created, False
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
