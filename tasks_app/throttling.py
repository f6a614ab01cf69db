from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import ScopedRateThrottle


class SubmitRateThrottle(ScopedRateThrottle):
    """Limits how fast a user submits work (the view's ``throttle_scope``); reads are free."""

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
