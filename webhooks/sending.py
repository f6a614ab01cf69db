"""One attempt to send a delivery: to a checked address, within time and size limits.

The SSRF rules are those of URL ingestion (``documents.processing.addresses``): the URL is
http(s) without credentials, every address its host resolves to must be public or on
``WEBHOOKS_URL_ALLOWLIST``, and the connection goes to the address just checked, so a
second DNS answer cannot swap in a private one. Redirects are not followed (a 3xx is a
failed attempt, as Standard Webhooks says), so no hop escapes the check.
"""

import logging
import time
from dataclasses import dataclass

from django.utils.http import parse_http_date
from urllib3 import exceptions as urllib3_errors

from documents.processing import DocumentError, TransientFetchError, UrlNotAllowed
from documents.processing.addresses import parse_url, resolve
from documents.processing.pinned_connection import Deadline, open_pinned

logger = logging.getLogger(__name__)

USER_AGENT = "job-service-webhooks/1.0"
# What is kept of an answer's body for the delivery log, and the most read of it.
KEPT_BODY_CHARS = 1000
READ_BODY_BYTES = 64 * 1024
# The longest Retry-After honoured: a receiver cannot park a delivery for days.
MAX_RETRY_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class SendPolicy:
    connect_timeout: float
    total_timeout: float
    allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error that kept it from getting one."""

    status_code: int | None
    duration_ms: int
    error: str = ""
    response_body: str = ""
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(url: str, *, body: str, headers: dict, policy: SendPolicy) -> Outcome:
    """POST ``body`` to ``url``; never raises for what the receiver or the network does."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = parse_url(url)
        addresses = resolve(target, allowlist=policy.allowlist)
        with Deadline(policy.total_timeout) as deadline:
            pool, response = open_pinned(
                target,
                addresses,
                user_agent=USER_AGENT,
                connect_timeout=policy.connect_timeout,
                read_timeout=policy.total_timeout,
                deadline=deadline,
                method="POST",
                body=body.encode(),
                headers=headers,
            )
            with pool, response:
                answer = response.read(READ_BODY_BYTES, decode_content=False) or b""
                return Outcome(
                    status_code=response.status,
                    duration_ms=elapsed(),
                    response_body=answer.decode("utf-8", "replace")[:KEPT_BODY_CHARS],
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
    except (UrlNotAllowed, DocumentError, TransientFetchError) as error:
        return Outcome(status_code=None, duration_ms=elapsed(), error=str(error)[:500])
    except (urllib3_errors.HTTPError, OSError) as error:
        kind = "timed out" if elapsed() >= policy.total_timeout * 1000 else "failed"
        return Outcome(
            status_code=None,
            duration_ms=elapsed(),
            error=f"The request {kind}: {type(error).__name__}: {error}"[:500],
        )
    except Exception as error:  # a failed attempt, never a dead sending thread
        logger.exception("webhook attempt to %s failed unexpectedly", url)
        return Outcome(
            status_code=None,
            duration_ms=elapsed(),
            error=f"The attempt failed: {type(error).__name__}: {error}"[:500],
        )


def _retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds, or an HTTP date (RFC 9110
    10.2.3), as seconds from ``now`` (a date past is 0). Nonsense is ignored."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = max(0.0, parse_http_date(value) - (time.time() if now is None else now))
        except ValueError:
            return None
    if seconds != seconds or seconds < 0:  # NaN included
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)
