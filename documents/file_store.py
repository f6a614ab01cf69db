"""The file store's failures, as a user and a task understand them.

With object storage (S3 and the like, config/storage.py) the store is a service on the
network: it may be down or slow for a while. An upload then answers 503 and asks to try
again, and a processing run is retried as for a web page that did not answer, instead of
a 500 or a document failed for good.
"""

from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError
from rest_framework import status

from api.errors import DomainError
from tasks_app.errors import TransientTaskError

# S3's answers that mean "not now" rather than "never".
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}


class FileStoreUnavailable(TransientTaskError, DomainError):
    """The file store could not be reached or refused for now: try again later."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


@contextmanager
def file_store_errors():
    """Turn the object store's network and server errors into ``FileStoreUnavailable``."""
    try:
        yield
    except BotoCoreError as error:  # no connection, a timeout, a dropped answer
        raise FileStoreUnavailable(
            f"The file store could not be reached; try again in a moment ({type(error).__name__})."
        ) from error
    except ClientError as error:
        answer = error.response.get("Error", {})
        code = str(answer.get("Code", ""))
        http = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _TRANSIENT_CODES or http >= 500:
            raise FileStoreUnavailable(
                f"The file store is unavailable right now; try again in a moment ({code})."
            ) from error
        raise
