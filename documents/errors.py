"""Domain errors of document services (processing errors live in documents.processing)."""

from api.errors import DomainError


class DocumentBusy(DomainError):
    """The document is still being processed; the request has to wait for it to finish."""

    http_status = 409

    def __init__(self, *, status: str):
        self.status = status
        super().__init__(
            f"The document is {status}; wait until it has finished, or cancel it first."
        )


class DocumentNotReady(DomainError):
    """The document has no extracted text yet (it is not completed)."""

    http_status = 409

    def __init__(self, *, status: str):
        self.status = status
        super().__init__(f"The document has no text yet (status: {status}).")
