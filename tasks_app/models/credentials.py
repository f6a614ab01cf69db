"""What a script authenticates with: API keys and user tokens, stored as digests."""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


def secret_digest(raw_key: str) -> str:
    """What is stored of a key or token: its SHA-256. They are long random strings, so a
    plain digest (no slow hash) cannot be reversed."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A key for the ``X-API-Key`` header. Only a SHA-256 digest of the key is stored.

    Keys are long random strings, so a plain digest (no slow hash) cannot be reversed;
    the visible ``prefix`` lets an owner tell keys apart without storing the secret.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    digest = staticmethod(secret_digest)


class UserToken(models.Model):
    """A token for the ``Authorization: Token <key>`` header. Only its SHA-256 digest is stored.

    Like an ``ApiKey``, the raw token is shown once when it is issued (``tokens.py``) and
    a stolen database holds nothing that authenticates. A user may hold several tokens;
    deleting one revokes it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens"
    )
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "token"

    def __str__(self) -> str:
        return f"Token of {self.user} ({self.created_at:%Y-%m-%d %H:%M})"

    digest = staticmethod(secret_digest)
