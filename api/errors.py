"""The base of every domain error an API may answer with, and the HTTP status it carries.

Services raise their app's subclasses; ``api.exception_handlers`` turns any of them into
DRF's JSON error format without knowing the app. The status belongs to the error because
it says what kind of failure it is (a conflict, a limit), which the service knows best.
"""

from rest_framework import status


class DomainError(Exception):
    """An error a caller can act on. The API answers ``http_status`` with the message.

    Subclasses may set ``field`` to report the error as a validation error of that input
    field, and may carry ``status`` (the object's status) and ``limit`` (the limit reached),
    which the JSON body repeats for clients.
    """

    http_status: int = status.HTTP_400_BAD_REQUEST
    field: str | None = None
