"""Reading a fetched page's response: its body into a file within limits, and what it is.

The body is streamed and counted after decompression, so a small compressed body that
inflates to gigabytes stops at the size limit; the fetch's deadline is checked at every
chunk. The headers give the page's media type, charset and a safe file name.
"""

import codecs
import email.message
import re
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote

from urllib3 import HTTPResponse

from documents.processing import DocumentError
from documents.processing.addresses import Target
from documents.processing.pinned_connection import Deadline

DEFAULT_FILENAME = "page.html"
_CHUNK_SIZE = 64 * 1024
_MAX_FILENAME_LENGTH = 100


@dataclass(frozen=True)
class FetchedPage:
    final_url: str
    content_type: str | None  # the media type only, lowercased, no parameters
    charset: str | None  # lowercased; None when absent or not a charset Python knows
    size: int  # bytes written to dest, after decompression
    suggested_filename: str


def save_body(
    response: HTTPResponse,
    dest: BinaryIO,
    target: Target,
    *,
    max_bytes: int,
    deadline: Deadline,
) -> FetchedPage:
    """Write the response's decompressed body to ``dest``; raise DocumentError past max_bytes."""
    encodings = response.headers.get("Content-Encoding", "").lower().split(",")
    unknown = [e.strip() for e in encodings if e.strip() not in ("", "identity")]
    unknown = [e for e in unknown if e not in HTTPResponse.CONTENT_DECODERS]
    if unknown:
        raise DocumentError(f"The page is compressed in a way we cannot read ({unknown[0]}).")
    if (response.length_remaining or 0) > max_bytes:
        raise _too_large(max_bytes)
    size = 0
    # Chunks are decompressed ones, at most _CHUNK_SIZE each, so a small compressed body
    # that inflates to gigabytes stops at the limit instead of filling memory. Say
    # decode_content=True here even though urlopen was told: for a chunked response,
    # urllib3 2.8's stream() ignores urlopen's setting and yields compressed bytes.
    for chunk in response.stream(_CHUNK_SIZE, decode_content=True):
        deadline.check(target.host)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        dest.write(chunk)
    deadline.check(target.host)  # the deadline's timer may have cut the body short
    content_type, charset = _content_type(response.headers.get("Content-Type"))
    return FetchedPage(
        final_url=target.url,
        content_type=content_type,
        charset=charset,
        size=size,
        suggested_filename=_suggested_filename(
            response.headers.get("Content-Disposition"), target.request_path
        ),
    )


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    media_type = value.split(";", 1)[0].strip().lower()
    message = email.message.Message()
    message["Content-Type"] = value
    charset = message.get_content_charset()
    try:
        codecs.lookup(charset or "")
    except LookupError:
        charset = None
    return (media_type if "/" in media_type else None), charset


def _suggested_filename(disposition: str | None, request_path: str) -> str:
    name = None
    if disposition:
        message = email.message.Message()
        message["Content-Disposition"] = disposition
        name = message.get_filename()
    if not name:
        name = unquote(request_path.split("?", 1)[0].rsplit("/", 1)[-1])
    name = unicodedata.normalize("NFKC", name)
    name = re.split(r"[/\\]", name)[-1]  # the base name only, whatever the separator
    name = re.sub(r"[^\w.-]+", "_", name).strip("._-")  # no hidden files, no "..", no "-x"
    if len(name) > _MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension) > 10:
            stem, extension = name, ""
        name = stem[: _MAX_FILENAME_LENGTH - len(dot + extension)] + dot + extension
    return name or DEFAULT_FILENAME


def _too_large(max_bytes: int) -> DocumentError:
    return DocumentError(f"The page is larger than the {_size_text(max_bytes)} limit.")


def _size_text(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
