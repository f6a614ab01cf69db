from rest_framework import status

from api.errors import DomainError


class EndpointLimitReached(DomainError):
    """The user already has as many webhook endpoints as anyone may."""

    http_status = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, *, limit: int):
        self.limit = limit
        super().__init__(
            f"You already have {limit} webhook endpoints, the most allowed; delete one you no "
            "longer use, then create the new one."
        )


class WebhookUrlNotAllowed(DomainError):
    """An endpoint or callback address the service will not send to."""

    field = "url"
