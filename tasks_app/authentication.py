"""Credentials of scripts and services that hold a token or key, not a session.

Both kinds are stored as SHA-256 digests only: the presented secret is hashed and the
digest looked up through a unique index, so nothing is compared character by character
and a copy of the database authenticates nobody.
"""

from django.utils import timezone
from rest_framework import authentication, exceptions

from tasks_app.models import ApiKey, UserToken


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
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
        return api_key.owner, api_key

    def authenticate_header(self, request) -> str:
        return "X-API-Key"
