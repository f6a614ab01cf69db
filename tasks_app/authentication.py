"""``X-API-Key`` authentication for scripts and services that hold a key, not a session."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from tasks_app.models import ApiKey


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
