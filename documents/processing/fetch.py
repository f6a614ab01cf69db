"""Downloading a web page a user submitted, without letting the URL reach private networks.

The defence against server-side request forgery, in order:

1. the URL is http or https, names a host and carries no user name or password;
2. the host is resolved once, and EVERY address it resolves to must be public (or
   allowlisted): no loopback, private, link-local (cloud metadata), shared, multicast or
   reserved address, nor an IPv6 form that embeds one;
3. the connection goes to the address just checked, never to the name, so a second DNS
   answer cannot swap in a private address (DNS rebinding);
4. redirects are followed by hand and every hop goes through 1-3 again.

Steps 1 and 2, deciding whether a URL may be fetched, live in ``addresses``; step 3,
connecting to the checked address within one deadline for the whole download, redirects
included, in ``pinned_connection``; reading the body, streamed and counted after
decompression, and what the headers say of it, in ``response_body``. This module follows
the redirects (4) and turns the status and the errors into ones a user can read.

``FetchPolicy``, ``check_url`` and ``fetch_url`` stay here, the one place callers import.
The policy's knobs are handed to the other modules as plain values, so they know nothing
of it and the dependency runs one way; ``check_url``, taking the policy, is the
submit-time subset of ``fetch_url``'s checks, built from the steps in ``addresses``.
"""

from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLCertVerificationError
from typing import BinaryIO
from urllib.parse import urljoin

from urllib3 import exceptions as urllib3_errors
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch

from documents.processing import DocumentError, TransientFetchError, UrlNotAllowed
from documents.processing.addresses import check_addresses, parse_url, resolve, validate_allowlist
from documents.processing.pinned_connection import Deadline, open_pinned
from documents.processing.response_body import FetchedPage, save_body

__all__ = ["FetchPolicy", "FetchedPage", "check_url", "fetch_url"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


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
    with Deadline(policy.total_timeout) as deadline:
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
                pool, response = open_pinned(
                    target,
                    addresses,
                    user_agent=policy.user_agent,
                    connect_timeout=policy.connect_timeout,
                    read_timeout=policy.read_timeout,
                    deadline=deadline,
                )
                with pool, response:
                    if response.status not in REDIRECT_STATUSES:
                        _check_status(response.status)
                        return save_body(
                            response, dest, target, max_bytes=policy.max_bytes, deadline=deadline
                        )
                    location = response.headers.get("Location")
                    if not location:
                        raise DocumentError("The page redirected without saying where to.")
                    url = urljoin(target.url, location.strip())
    raise DocumentError(
        f"Too many redirects: the page redirected more than {policy.max_redirects} times."
    )


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    status_text = str(status)
    with suppress(ValueError):
        status_text = f"{status} {HTTPStatus(status).phrase}"
    if status == 429 or status >= 500:
        raise TransientFetchError(f"The page could not be fetched right now: HTTP {status_text}.")
    raise DocumentError(f"The page could not be fetched: HTTP {status_text}.")


@contextmanager
def _plain_errors(host: str, deadline: Deadline):
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
