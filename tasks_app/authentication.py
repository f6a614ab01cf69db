"""Credentials of scripts and services that hold a token or key, not a session.

Both kinds are stored as SHA-256 digests only: the presented secret is hashed and the
digest looked up through a unique index, so nothing is compared character by character
and a copy of the database authenticates nobody.
"""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from tasks_app.models import ApiKey, UserToken

# How far behind an API key's ``last_used_at`` may be. It tells an owner whether a key is
# still in use, which needs minutes, not the exact request: written on every request it
# was a write (and a round trip) per request for a script using the key.
API_KEY_LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``: DRF's header parsing, checked against ``UserToken``."""

    model = UserToken

    def authenticate_credentials(self, key):
        token = (
            UserToken.objects.select_related("user")
            .filter(key_digest=UserToken.digest(key))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw_key = request.META.get(self.header)
        if not raw_key:
            return None
        api_key = (
            ApiKey.objects.select_related("owner")
            .filter(key_digest=ApiKey.digest(raw_key), revoked_at__isnull=True)
            .first()
        )
        if api_key is None or not api_key.owner.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        now = timezone.now()
        if (
            api_key.last_used_at is None
            or now - api_key.last_used_at >= API_KEY_LAST_USED_RESOLUTION
        ):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return api_key.owner, api_key

    def authenticate_header(self, request) -> str:
        return "X-API-Key"
