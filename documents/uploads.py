"""Refusing an oversized upload while it streams in, before it is stored anywhere."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import exceptions
from rest_framework.parsers import MultiPartParser

# Room for the multipart boundaries and headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "upload_too_large"

    def __init__(self, limit_bytes: int):
        super().__init__(f"The file is larger than the upload limit of {_megabytes(limit_bytes)}.")


class MaxSizeUploadHandler(FileUploadHandler):
    """First of the upload handlers: stops the request as soon as it is too large.

    A declared Content-Length over the limit is refused before a byte is read; a body
    that is larger than it declared is cut off by Django itself, and a file that grows
    past the limit while streaming is refused at that chunk.
    """

    def __init__(self, limit_bytes: int, request=None):
        super().__init__(request)
        self.limit_bytes = limit_bytes

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.limit_bytes + MULTIPART_OVERHEAD_BYTES:
            raise UploadTooLarge(self.limit_bytes)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit_bytes:
            raise UploadTooLarge(self.limit_bytes)
        return raw_data

    def file_complete(self, file_size):
        return None


class BoundedMultiPartParser(MultiPartParser):
    """DRF's multipart parser, with ``MaxSizeUploadHandler`` (DOCUMENTS_MAX_UPLOAD_BYTES)
    first among the request's upload handlers, so that no byte past the limit is stored."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        # The handlers are read when the body is parsed, which is now: not earlier.
        request.upload_handlers.insert(
            0, MaxSizeUploadHandler(settings.DOCUMENTS_MAX_UPLOAD_BYTES, request)
        )
        return super().parse(stream, media_type=media_type, parser_context=parser_context)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"
