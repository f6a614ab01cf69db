"""The API's JSON parser: DRF's, with the limits a hostile body must not get past.

DRF's own ``JSONParser`` reads the whole stream (Django's DATA_UPLOAD_MAX_MEMORY_SIZE
guards only ``request.body`` and form data), lets a deeply nested document overflow the
stack, and passes on values that no database column or log line can hold.
"""

import json
import math
import re

from django.conf import settings
from rest_framework import exceptions, parsers

# Deep enough for any task input; far below the ~1,000 levels at which the decoder,
# the serializers or the database driver would overflow Python's stack.
MAX_JSON_DEPTH = 64
READ_CHUNK_BYTES = 64 * 1024
# PostgreSQL refuses NUL in text and jsonb, and a lone surrogate has no UTF-8 encoding:
# both would fail only when the row is written, as a 500.
_UNSTORABLE_CHARACTER = re.compile(r"[\x00\ud800-\udfff]")


class RequestBodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"

    def __init__(self, limit_bytes: int):
        super().__init__(f"The request body is larger than the limit of {limit_bytes} bytes.")


class BoundedJSONParser(parsers.JSONParser):
    """At most API_MAX_JSON_BYTES, counted while reading (a declared Content-Length
    can be refused at once, but the bytes that actually arrive are what counts)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.API_MAX_JSON_BYTES
        request = parser_context.get("request")
        if request is not None and _declared_length(request.META) > limit:
            raise RequestBodyTooLarge(limit)
        body = _read_at_most(stream, limit)
        try:
            text = body.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET))
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            raise _parse_error(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
            raise _parse_error(str(error)) from None
        _check_depth_and_strings(data)
        return data


def _declared_length(meta) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _read_at_most(stream, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise RequestBodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _check_depth_and_strings(data) -> None:
    # Iterative, so that the check itself cannot overflow the stack.
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if match := _UNSTORABLE_CHARACTER.search(value):
                raise _parse_error(f"strings cannot contain U+{ord(match[0]):04X}")
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _parse_error(f"nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def _parse_error(reason: str) -> exceptions.ParseError:
    # The same words as DRF's own parse errors, so clients see one format.
    return exceptions.ParseError(f"JSON parse error - {reason}")
