import io
import socket
import time
import tracemalloc
from urllib.parse import quote

import pytest

from documents.processing import DocumentError, TransientFetchError, UrlNotAllowed
from documents.processing.fetch import FetchPolicy, fetch_url
from tests.documents.fetch.local_server import BOMB_SIZE, PAGE, bomb

LOCAL = FetchPolicy(allowlist=("127.0.0.1",))


def fetch(url: str, policy: FetchPolicy = LOCAL):
    dest = io.BytesIO()
    page = fetch_url(url, dest, policy=policy)
    return page, dest.getvalue()


def test_fetches_a_page_with_its_type_and_charset(server):
    page, body = fetch(server.url("/page"))

    assert body == PAGE
    assert page.size == len(PAGE)
    assert page.final_url == server.url("/page")
    assert page.content_type == "text/html"
    assert page.charset == "iso-8859-1"
    assert page.suggested_filename == "page"
    _, headers = server.requests[0]
    assert headers["User-Agent"] == "job-service-fetcher/1.0"


def test_gzip_page_is_decompressed_and_counted_decompressed(server):
    page, body = fetch(server.url("/gzip-page"))

    assert body == PAGE
    assert page.size == len(PAGE)


def test_compression_we_cannot_read_is_refused(server):
    with pytest.raises(DocumentError, match=r"compressed in a way we cannot read \(br\)"):
        fetch(server.url("/brotli-page"))


# The address rules


def test_loopback_without_allowlist_is_refused_before_connecting(server):
    with pytest.raises(UrlNotAllowed, match="127.0.0.1 is a private or reserved"):
        fetch(server.url("/page"), FetchPolicy())

    assert server.connections == 0


def test_host_name_resolving_to_loopback_is_refused_before_connecting(server, dns):
    dns.answers["evil.test"] = ["127.0.0.1"]

    with pytest.raises(UrlNotAllowed, match="evil.test points to a private or reserved"):
        fetch(f"http://evil.test:{server.port}/page", FetchPolicy())

    assert server.connections == 0


def test_host_name_is_refused_when_any_of_its_addresses_is_private(server, dns):
    dns.answers["mixed.test"] = ["93.184.216.34", "127.0.0.1"]

    with pytest.raises(UrlNotAllowed):
        fetch(f"http://mixed.test:{server.port}/page", FetchPolicy())

    assert server.connections == 0


def test_allowlisted_host_name_connects_to_the_checked_address_only(server, dns):
    dns.answers["intranet.test"] = ["127.0.0.1"]

    page, body = fetch(
        f"http://intranet.test:{server.port}/echo-host",
        FetchPolicy(allowlist=("intranet.test",)),
    )

    assert body == f"intranet.test:{server.port}".encode()  # the name, not the address
    assert dns.lookups == ["intranet.test"]  # looked up once: no second answer to trust
    assert page.final_url == f"http://intranet.test:{server.port}/echo-host"


def test_address_that_refuses_is_skipped_for_the_next_one(server, dns):
    dns.answers["two.test"] = ["127.0.0.2", "127.0.0.1"]  # the server listens on .1 only

    _, body = fetch(f"http://two.test:{server.port}/page", FetchPolicy(allowlist=("two.test",)))

    assert body == PAGE


# Redirects


def test_redirect_to_a_local_path_is_followed(server):
    page, body = fetch(server.url("/redirect"))

    assert body == PAGE
    assert page.final_url == server.url("/page")
    assert [path for path, _ in server.requests] == ["/redirect", "/page"]


def test_redirects_up_to_the_limit_are_followed(server):
    page, _ = fetch(server.url("/chain/2"), FetchPolicy(allowlist=("127.0.0.1",), max_redirects=3))

    assert page.final_url == server.url("/page")


def test_redirect_to_the_metadata_address_is_refused(server):
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(server.url("/to-metadata"))

    assert str(caught.value) == (
        "The page redirected to a URL that is not allowed: "
        "169.254.169.254 is a private or reserved network address."
    )


def test_redirect_to_a_host_resolving_to_a_private_address_is_refused(server, dns):
    dns.answers["inside.test"] = ["10.0.0.7"]
    location = quote("http://inside.test/secret", safe="")

    with pytest.raises(UrlNotAllowed) as caught:
        fetch(server.url(f"/to?url={location}"))

    assert str(caught.value) == (
        "The page redirected to a URL that is not allowed: "
        "inside.test points to a private or reserved network address."
    )


def test_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(UrlNotAllowed, match="Only http:// and https://"):
        fetch(server.url("/to-file"))


def test_redirect_loop_stops_after_max_redirects(server):
    with pytest.raises(DocumentError, match="Too many redirects") as caught:
        fetch(server.url("/loop"), FetchPolicy(allowlist=("127.0.0.1",), max_redirects=3))

    assert not isinstance(caught.value, UrlNotAllowed)
    assert len(server.requests) == 4  # the first request and three redirects


def test_redirect_without_location_is_a_document_error(server):
    with pytest.raises(DocumentError, match="redirected without saying where to"):
        fetch(server.url("/no-location"))


# Size


SMALL = FetchPolicy(allowlist=("127.0.0.1",), max_bytes=64 * 1024)


@pytest.mark.parametrize("path", ["/huge-chunked", "/huge-until-close"])
def test_body_past_max_bytes_without_a_length_is_cut_off(server, path):
    dest = io.BytesIO()

    with pytest.raises(DocumentError, match=r"The page is larger than the 64 KB limit\."):
        fetch_url(server.url(path), dest, policy=SMALL)

    assert len(dest.getvalue()) <= SMALL.max_bytes


def test_declared_length_past_max_bytes_is_refused_before_reading(server):
    dest = io.BytesIO()

    with pytest.raises(DocumentError, match="larger than the 64 KB limit"):
        fetch_url(server.url("/declared-huge"), dest, policy=SMALL)

    assert dest.getvalue() == b""


def test_body_longer_than_its_declared_length_is_read_to_the_declared_length(server):
    page, body = fetch(server.url("/short-length"), SMALL)

    assert page.size == len(body) == 100


def test_body_shorter_than_its_declared_length_is_a_transient_error(server):
    with pytest.raises(TransientFetchError, match="connection to 127.0.0.1 was interrupted"):
        fetch(server.url("/truncated"))


@pytest.mark.parametrize("path", ["/bomb/gzip", "/bomb/deflate", "/chunked-bomb/gzip"])
def test_compression_bomb_stops_at_max_bytes_without_inflating_in_memory(server, path):
    policy = FetchPolicy(allowlist=("127.0.0.1",), max_bytes=1024 * 1024)
    dest = io.BytesIO()
    bomb(path.rsplit("/", 1)[1])  # built (in this process) before memory is measured

    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match=r"larger than the 1 MB limit"):
            fetch_url(server.url(path), dest, policy=policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(dest.getvalue()) <= policy.max_bytes
    assert peak < BOMB_SIZE / 2  # the 10 MB of zeros never sat in memory at once


def test_limit_is_stated_in_megabytes(server):
    with pytest.raises(DocumentError) as caught:
        fetch(server.url("/declared-huge"))

    assert str(caught.value) == "The page is larger than the 20 MB limit."


# Time


SLOW = FetchPolicy(allowlist=("127.0.0.1",), total_timeout=1.0, read_timeout=20.0)


@pytest.mark.parametrize("path", ["/slow-start", "/drip-headers", "/drip-body"])
def test_whole_download_is_bounded_by_total_timeout(server, path):
    started = time.monotonic()

    with pytest.raises(TransientFetchError, match="127.0.0.1 did not answer in time"):
        fetch(server.url(path), SLOW)

    assert time.monotonic() - started < 2.0


# Answers and failures


@pytest.mark.parametrize(
    "status, error, message",
    [
        (404, DocumentError, "The page could not be fetched: HTTP 404 Not Found."),
        (410, DocumentError, "The page could not be fetched: HTTP 410 Gone."),
        (401, DocumentError, "The page could not be fetched: HTTP 401 Unauthorized."),
        (403, DocumentError, "The page could not be fetched: HTTP 403 Forbidden."),
        (499, DocumentError, "The page could not be fetched: HTTP 499."),
        (304, DocumentError, "The page could not be fetched: HTTP 304 Not Modified."),
        (
            429,
            TransientFetchError,
            "The page could not be fetched right now: HTTP 429 Too Many Requests.",
        ),
        (
            500,
            TransientFetchError,
            "The page could not be fetched right now: HTTP 500 Internal Server Error.",
        ),
        (
            503,
            TransientFetchError,
            "The page could not be fetched right now: HTTP 503 Service Unavailable.",
        ),
    ],
)
def test_http_errors_are_permanent_except_429_and_5xx(server, status, error, message):
    with pytest.raises(error) as caught:
        fetch(server.url(f"/status/{status}"))

    assert type(caught.value) is error
    assert str(caught.value) == message


def test_refused_connection_is_transient():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(TransientFetchError, match="Could not connect to 127.0.0.1"):
        fetch(f"http://127.0.0.1:{port}/")


def test_host_name_that_does_not_exist_is_permanent():
    with pytest.raises(DocumentError, match=r"^The host name gone.test does not exist\.$"):
        fetch("http://gone.test/")


def test_dns_failure_that_may_pass_is_transient(dns):
    dns.answers["flaky.test"] = socket.gaierror(socket.EAI_AGAIN, "Temporary failure")

    with pytest.raises(TransientFetchError, match="flaky.test could not be looked up"):
        fetch("http://flaky.test/")


# What the page is called


@pytest.mark.parametrize(
    "content_type, media_type, charset",
    [
        ("TEXT/HTML; Charset=UTF-8", "text/html", "utf-8"),
        ('application/pdf; name="x.pdf"', "application/pdf", None),
        ("text/plain; charset=no-such-charset", "text/plain", None),
        ("nonsense", None, None),
    ],
)
def test_content_type_is_the_lowercased_media_type(server, content_type, media_type, charset):
    page, _ = fetch(server.url(f"/meta?ct={quote(content_type)}"))

    assert (page.content_type, page.charset) == (media_type, charset)


@pytest.mark.parametrize(
    "disposition, filename",
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ('attachment; filename="../../etc/pass wd.txt"', "pass_wd.txt"),
        ('attachment; filename="C:\\Users\\me\\notes.txt"', "notes.txt"),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ('attachment; filename=".bashrc"', "bashrc"),
        ('attachment; filename=".."', "page.html"),
        ("inline", "meta"),  # no name: the URL's last segment
    ],
)
def test_suggested_filename_comes_from_content_disposition(server, disposition, filename):
    page, _ = fetch(server.url(f"/meta?cd={quote(disposition)}"))

    assert page.suggested_filename == filename


@pytest.mark.parametrize(
    "path, filename",
    [
        ("/files/report%20v2.html?download=1", "report_v2.html"),
        ("/files/", "page.html"),
        ("/", "page.html"),
        ("/files/" + "a" * 300 + ".html", "a" * 95 + ".html"),
    ],
)
def test_suggested_filename_falls_back_to_the_url_path(server, path, filename):
    page, _ = fetch(server.url(path))

    assert page.suggested_filename == filename
