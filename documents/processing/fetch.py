"""Downloading a web page a user submitted, without letting the URL reach private networks.

The defence against server-side request forgery, in order:

1. the URL is http or https, names a host and carries no user name or password;
2. the host is resolved once, and EVERY address it resolves to must be public (or
   allowlisted): no loopback, private, link-local (cloud metadata), shared, multicast or
   reserved address, nor an IPv6 form that embeds one;
3. the connection goes to the address just checked, never to the name, so a second DNS
   answer cannot swap in a private address (DNS rebinding);
4. redirects are followed by hand and every hop goes through 1-3 again.

Steps 1 and 2, deciding whether a URL may be fetched, live in ``addresses``; this module
downloads (3 and 4). Size and time are bounded too: the body is streamed and counted after
decompression, and one deadline covers the whole download, redirects included.

``FetchPolicy``, ``check_url`` and ``fetch_url`` stay here, the one place callers import.
The policy is mostly download knobs, and ``addresses`` takes only its allowlist, so the
dependency runs one way; ``check_url``, taking the policy, is the submit-time subset of
``fetch_url``'s checks, built from the steps in ``addresses``.
"""

import codecs
import email.message
import re
import socket
import threading
import time
import unicodedata
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLCertVerificationError
from typing import BinaryIO
from urllib.parse import unquote, urljoin

from urllib3 import HTTPConnectionPool, HTTPResponse, HTTPSConnectionPool, Timeout
from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch

from documents.processing import DocumentError, TransientFetchError, UrlNotAllowed
from documents.processing.addresses import (
    IPAddress,
    Target,
    check_addresses,
    parse_url,
    resolve,
    validate_allowlist,
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_FILENAME = "page.html"
_CHUNK_SIZE = 64 * 1024
_MAX_FILENAME_LENGTH = 100
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  # wall clock for the whole download, redirects included
    max_redirects: int = 5
    # Host names ("intranet.example") or addresses and networks ("10.0.0.0/8", "::1")
    # that may be fetched even though they are private.
    allowlist: tuple[str, ...] = ()
    user_agent: str = "job-service-fetcher/1.0"

    def __post_init__(self):
        validate_allowlist(self.allowlist)  # a typo must not pass silently


@dataclass(frozen=True)
class FetchedPage:
    final_url: str
    content_type: str | None  # the media type only, lowercased, no parameters
    charset: str | None  # lowercased; None when absent or not a charset Python knows
    size: int  # bytes written to dest, after decompression
    suggested_filename: str


def check_url(url: str, *, policy: FetchPolicy) -> None:
    """Refuse, with UrlNotAllowed, a URL that can never be fetched; no DNS lookup.

    The web process runs this when a URL is submitted; the worker checks again, with the
    addresses the host resolves to, in ``fetch_url``.
    """
    target = parse_url(url)
    if target.address is not None:
        check_addresses(target, [target.address], allowlist=policy.allowlist)


def fetch_url(url: str, dest: BinaryIO, *, policy: FetchPolicy) -> FetchedPage:
    """Download the page at ``url`` into ``dest``, following redirects.

    Raises UrlNotAllowed for a URL or redirect that is not allowed, DocumentError for a
    permanent failure (404, too large, no such host) and TransientFetchError for one a
    retry may fix (timeout, refused connection, 429, 5xx). On error ``dest`` may hold part
    of the body: the caller discards it.
    """
    with _Deadline(policy.total_timeout) as deadline:
        for hop in range(policy.max_redirects + 1):
            try:
                target = parse_url(url)
                addresses = resolve(target, allowlist=policy.allowlist)
            except UrlNotAllowed as error:
                if hop == 0:
                    raise
                raise UrlNotAllowed(
                    f"The page redirected to a URL that is not allowed: {error}"
                ) from None
            with _plain_errors(target.host, deadline):
                pool, response = _open(target, addresses, policy=policy, deadline=deadline)
                with pool, response:
                    if response.status not in REDIRECT_STATUSES:
                        _check_status(response.status)
                        return _save(response, dest, target, policy=policy, deadline=deadline)
                    location = response.headers.get("Location")
                    if not location:
                        raise DocumentError("The page redirected without saying where to.")
                    url = urljoin(target.url, location.strip())
    raise DocumentError(
        f"Too many redirects: the page redirected more than {policy.max_redirects} times."
    )


class _Deadline:
    """The wall-clock budget of one fetch, from the first connection to the last byte.

    Socket timeouts bound each read, not their sum: a server sending one byte every few
    seconds never trips them. So a timer shuts the fetch's sockets down when the budget
    runs out, which ends a blocked read at once. It holds duplicates (``dup()``) of the
    sockets: TLS takes over the original socket object, and a file descriptor the fetch
    already closed may belong to someone else by then.
    """

    def __init__(self, seconds: float):
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self.expired = False

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def remaining(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def check(self, host: str) -> None:
        if self.expired or self.remaining() == 0:
            raise TransientFetchError(f"{host} did not answer in time.")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            copy = sock.dup()
            self._sockets.append(copy)
            if self.expired:
                _shut_down(copy)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection:
    """A urllib3 connection whose socket the fetch's deadline can shut down."""

    def __init__(self, *args, fetch_deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._fetch_deadline = fetch_deadline

    def _new_conn(self):
        # urllib3's hook that opens the TCP socket, before any TLS is layered on it.
        sock = super()._new_conn()
        self._fetch_deadline.watch(sock)
        return sock


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _open(
    target: Target, addresses: list[IPAddress], *, policy: FetchPolicy, deadline: _Deadline
) -> tuple[HTTPConnectionPool, HTTPResponse]:
    """Send the GET to the first address that accepts a connection: (pool, response)."""
    headers = {
        "Host": target.host_header,
        "User-Agent": policy.user_agent,
        "Accept": _ACCEPT,
        "Accept-Encoding": "gzip, deflate",
    }
    for index, address in enumerate(addresses):
        deadline.check(target.host)
        remaining = deadline.remaining()
        timeout = Timeout(
            connect=min(policy.connect_timeout, remaining),
            read=min(policy.read_timeout, remaining),
        )
        if target.scheme == "https":
            pool = _HTTPSPool(
                str(address),
                target.port,
                cert_reqs="CERT_REQUIRED",  # with the system's trusted certificates
                server_hostname=target.host,
                assert_hostname=target.host,
                fetch_deadline=deadline,
            )
        else:
            pool = _HTTPPool(str(address), target.port, fetch_deadline=deadline)
        try:
            response = pool.urlopen(
                "GET",
                target.request_path,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
                timeout=timeout,
            )
        except urllib3_errors.NewConnectionError:
            pool.close()
            if index == len(addresses) - 1:
                raise
            continue  # the host may have other addresses that do answer
        except BaseException:
            pool.close()
            raise
        return pool, response
    raise AssertionError("a host always has at least one address")


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    status_text = str(status)
    with suppress(ValueError):
        status_text = f"{status} {HTTPStatus(status).phrase}"
    if status == 429 or status >= 500:
        raise TransientFetchError(f"The page could not be fetched right now: HTTP {status_text}.")
    raise DocumentError(f"The page could not be fetched: HTTP {status_text}.")


def _save(
    response: HTTPResponse,
    dest: BinaryIO,
    target: Target,
    *,
    policy: FetchPolicy,
    deadline: _Deadline,
) -> FetchedPage:
    encodings = response.headers.get("Content-Encoding", "").lower().split(",")
    unknown = [e.strip() for e in encodings if e.strip() not in ("", "identity")]
    unknown = [e for e in unknown if e not in HTTPResponse.CONTENT_DECODERS]
    if unknown:
        raise DocumentError(f"The page is compressed in a way we cannot read ({unknown[0]}).")
    if (response.length_remaining or 0) > policy.max_bytes:
        raise _too_large(policy)
    size = 0
    # Chunks are decompressed ones, at most _CHUNK_SIZE each, so a small compressed body
    # that inflates to gigabytes stops at the limit instead of filling memory. Say
    # decode_content=True here even though urlopen was told: for a chunked response,
    # urllib3 2.8's stream() ignores urlopen's setting and yields compressed bytes.
    for chunk in response.stream(_CHUNK_SIZE, decode_content=True):
        deadline.check(target.host)
        size += len(chunk)
        if size > policy.max_bytes:
            raise _too_large(policy)
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


def _too_large(policy: FetchPolicy) -> DocumentError:
    return DocumentError(f"The page is larger than the {_size_text(policy.max_bytes)} limit.")


def _size_text(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


@contextmanager
def _plain_errors(host: str, deadline: _Deadline):
    """Turn urllib3's errors into ones a user can read and a task can retry or not."""
    try:
        yield
    except urllib3_errors.HTTPError as error:
        if deadline.expired:
            raise TransientFetchError(f"{host} did not answer in time.") from error
        if isinstance(error, urllib3_errors.NewConnectionError):
            raise TransientFetchError(f"Could not connect to {host}.") from error
        if isinstance(error, urllib3_errors.TimeoutError):
            raise TransientFetchError(f"{host} did not answer in time.") from error
        if isinstance(error, urllib3_errors.SSLError):
            causes = (*error.args, error.__cause__)
            rejected = (SSLCertVerificationError, HostnameMismatch)
            if any(isinstance(cause, rejected) for cause in causes):
                raise DocumentError(
                    f"The security certificate of {host} could not be verified."
                ) from error
            raise TransientFetchError(f"The secure connection to {host} failed.") from error
        if isinstance(error, urllib3_errors.DecodeError):
            raise DocumentError("The page's compressed content is damaged.") from error
        if isinstance(error, urllib3_errors.ProtocolError):
            raise TransientFetchError(f"The connection to {host} was interrupted.") from error
        raise DocumentError(f"{host} sent a response that could not be read.") from error
