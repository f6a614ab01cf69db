"""Writes of ``Authorization: Token`` credentials: issue and revoke a user's tokens."""

import logging
import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from tasks_app.models import UserToken

logger = logging.getLogger(__name__)


def user_token_issue(*, user: AbstractBaseUser) -> tuple[UserToken, str]:
    """Issue a new token for ``user``. The raw token is returned once and never stored.

    40 hexadecimal characters, the shape of the tokens of DRF's authtoken that were
    issued before, so clients see no difference.
    """
    raw_key = secrets.token_hex(20)
    token = UserToken.objects.create(user=user, key_digest=UserToken.digest(raw_key))
    logger.info("token issued id=%s user=%s", token.pk, user.pk)
    return token, raw_key


def user_tokens_revoke(*, user: AbstractBaseUser) -> int:
    """Revoke (delete) every token of ``user``; returns how many there were."""
    revoked, _ = UserToken.objects.filter(user=user).delete()
    if revoked:
        logger.info("tokens revoked count=%s user=%s", revoked, user.pk)
    return revoked


@transaction.atomic
def user_token_replace(*, user: AbstractBaseUser) -> tuple[UserToken, str]:
    """Revoke every token of ``user`` and issue a single new one."""
    user_tokens_revoke(user=user)
    return user_token_issue(user=user)
