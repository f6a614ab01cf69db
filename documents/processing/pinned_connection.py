"""Connecting for a fetch: to an address already checked, never to a name, within a deadline.

Step 3 of the SSRF defence (see ``documents.processing.fetch``): the request goes to an
address ``addresses`` has just checked, and the host name is only sent as the Host header
and used for TLS (SNI and the certificate's name), so a second DNS answer cannot swap in a
private address (DNS rebinding). ``Deadline`` bounds the whole fetch, redirects included,
by shutting its sockets down when the time is up.
"""

import socket
import threading
import time
from contextlib import suppress

from urllib3 import HTTPConnectionPool, HTTPResponse, HTTPSConnectionPool, Timeout
from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPConnection, HTTPSConnection

from documents.processing import TransientFetchError
from documents.processing.addresses import IPAddress, Target

_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


class Deadline:
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

    def __init__(self, *args, fetch_deadline: Deadline, **kwargs):
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


def open_pinned(
    target: Target,
    addresses: list[IPAddress],
    *,
    user_agent: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: Deadline,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[HTTPConnectionPool, HTTPResponse]:
    """Send the request to the first address that accepts a connection: (pool, response).

    A GET asks for a page (what a fetch reads); another method sends ``body`` with
    ``headers`` (a webhook's POST). The response's body is not read yet; the caller closes
    both when done with it.
    """
    page_headers = (
        {"Accept": _ACCEPT, "Accept-Encoding": "gzip, deflate"} if method == "GET" else {}
    )
    headers = {
        "Host": target.host_header,
        "User-Agent": user_agent,
        **page_headers,
        **(headers or {}),
    }
    for index, address in enumerate(addresses):
        deadline.check(target.host)
        remaining = deadline.remaining()
        timeout = Timeout(
            connect=min(connect_timeout, remaining), read=min(read_timeout, remaining)
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
                method,
                target.request_path,
                body=body,
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
