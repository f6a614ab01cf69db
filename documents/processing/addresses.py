"""Deciding whether a URL a user submitted may be fetched: the first half of the SSRF defence.

1. the URL is http or https, names a host and carries no user name or password
   (``parse_url``);
2. the host is resolved once, and EVERY address it resolves to must be public (or
   allowlisted): no loopback, private, link-local (cloud metadata), shared, multicast or
   reserved address, nor an IPv6 form that embeds one (``resolve``, ``check_addresses``,
   ``is_public_address``).

The other half, connecting only to the addresses checked here and re-checking every
redirect, is the download's job: see ``documents.processing.fetch`` (and the two modules
it connects and reads with), this module's only users. This module knows nothing of
``FetchPolicy``: it takes the policy's allowlist alone, so the dependency runs one way,
fetch -> addresses.
"""

import ipaddress
import logging
import re
import socket
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from documents.processing import DocumentError, TransientFetchError, UrlNotAllowed

# A refusal is logged under the fetch module's name, as it was before this module was split
# from it, so log filters and alerts that watch that logger still see refusals.
logger = logging.getLogger("documents.processing.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HOST_NAME = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*")
# getaddrinfo's answers for a name that does not exist, or exists without an address.
_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def validate_allowlist(allowlist: tuple[str, ...]) -> None:
    """Raise ValueError for an entry written as an address or network that is not one.

    Entries are host names ("intranet.example") or addresses and networks ("10.0.0.0/8",
    "::1"); one with a "/" or ":" is meant as the latter, and a typo must not pass silently.
    """
    for entry in allowlist:
        if "/" in entry or ":" in entry:
            ipaddress.ip_network(entry, strict=False)


def is_public_address(address: str | IPAddress) -> bool:
    """Whether an address belongs to the public internet, so a user may make us reach it.

    IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged by its IPv4 address and 6to4 by the
    IPv4 address it embeds. Teredo (2001::/32) and NAT64 (64:ff9b::/96) are refused
    whole: Python counts them private or reserved.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
        if ip.is_site_local:  # fec0::/10: deprecated, but Python still counts it global
            return False
    # is_global alone is not enough: it is True for multicast addresses.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class Target:
    """A URL that passed ``parse_url``: what to connect to and what to ask for."""

    url: str
    scheme: str
    host: str  # lowercase ASCII, without IPv6 brackets or a trailing dot
    port: int
    request_path: str  # path and query, as sent on the request line
    address: IPAddress | None  # when the host is an IP address

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        return host if self.port == default_port else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split ``url`` into a Target, or refuse it with UrlNotAllowed; no DNS lookup."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise UrlNotAllowed("The URL is not valid.") from None
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed("Only http:// and https:// URLs can be fetched.")
    if "@" in parts.netloc:
        raise UrlNotAllowed("URLs with a user name or password are not allowed.")
    if not parts.hostname:
        raise UrlNotAllowed("The URL has no host name.")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise UrlNotAllowed("The URL's port is not valid.")
    host, address = _parse_host(parts.hostname)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return Target(url.strip(), parts.scheme, host, port, path, address)


def _parse_host(host: str) -> tuple[str, IPAddress | None]:
    with suppress(ValueError):
        return host, ipaddress.ip_address(host)
    try:
        host = host.encode("idna").decode("ascii").removesuffix(".")
    except UnicodeError:
        host = ""
    if len(host) > 253 or not _HOST_NAME.fullmatch(host):
        raise UrlNotAllowed("The URL's host name is not valid.")
    # Resolvers also read "127.1", "2130706433" and "0x7f000001" as IPv4 addresses.
    with suppress(OSError):
        return host, ipaddress.IPv4Address(socket.inet_aton(host))
    return host, None


def resolve(target: Target, *, allowlist: tuple[str, ...]) -> list[IPAddress]:
    """The addresses to connect to, once each has passed ``check_addresses``.

    Raises DocumentError for a host name that does not exist and TransientFetchError for
    a lookup that failed in a way that may pass.
    """
    if target.address is not None:
        addresses = [target.address]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_HOST:
                raise DocumentError(f"The host name {target.host} does not exist.") from error
            raise TransientFetchError(
                f"The host name {target.host} could not be looked up right now."
            ) from error
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    check_addresses(target, addresses, allowlist=allowlist)
    return addresses


def check_addresses(
    target: Target, addresses: list[IPAddress], *, allowlist: tuple[str, ...]
) -> None:
    """Refuse, with UrlNotAllowed, a target whose addresses are not all public or allowlisted."""
    networks, host_names = _split_allowlist(allowlist)
    if target.host in host_names:
        return
    for address in addresses:
        if is_public_address(address) or any(address in network for network in networks):
            continue
        logger.warning("Refused to fetch %s: %s resolves to %s", target.url, target.host, address)
        verb = "is" if target.address is not None else "points to"
        raise UrlNotAllowed(f"{target.host} {verb} a private or reserved network address.")


def _split_allowlist(allowlist: tuple[str, ...]) -> tuple[list, set[str]]:
    networks, host_names = [], set()
    for entry in allowlist:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            host_names.add(entry.lower().removesuffix("."))
    return networks, host_names
