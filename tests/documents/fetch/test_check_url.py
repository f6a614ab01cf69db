import pytest

from documents.processing import UrlNotAllowed
from documents.processing.addresses import is_public_address
from documents.processing.fetch import FetchPolicy, check_url

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "240.0.0.1",
    "224.0.0.1",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 embedding 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
]
PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "2606:2800:220:1:248:1893:25c8:1946",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",  # 6to4 embedding 93.184.216.34
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_private_and_reserved_addresses_are_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_internet_addresses_are_public(address):
    assert is_public_address(address)


@pytest.fixture(autouse=True)
def no_dns(dns):
    yield
    assert dns.lookups == [], "check_url must not resolve host names"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://example.com/path?q=1#part",
        "HTTP://EXAMPLE.COM",
        "https://example.com:8443/a",
        "http://93.184.216.34:8080/",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/",
        "https://bücher.example/",
        "http://host.that.does.not.exist.test/",  # no DNS at submit time
    ],
)
def test_check_url_accepts_public_http_urls(url):
    check_url(url, policy=FetchPolicy())


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/file", "Only http:// and https://"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("gopher://example.com/", "Only http:// and https://"),
        ("data:text/html,<b>hi</b>", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("example.com/page", "Only http:// and https://"),
        ("//example.com/page", "Only http:// and https://"),
        ("", "Only http:// and https://"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
        ("http://example.com\\@127.0.0.1/", "user name or password"),
        ("http:///path", "no host name"),
        ("http://:80/", "no host name"),
        ("http:example.com", "no host name"),
        ("http://example.com:99999/", "port is not valid"),
        ("http://example.com:0/", "port is not valid"),
        ("http://example.com:http/", "port is not valid"),
        ("http://exa mple.com/", "host name is not valid"),
        ("http://example.com\\evil/", "host name is not valid"),
        ("http://[::1/", "not valid"),
    ],
)
def test_check_url_refuses_malformed_urls(url, message):
    with pytest.raises(UrlNotAllowed, match=message):
        check_url(url, policy=FetchPolicy())


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8000/admin",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        # Spellings of 127.0.0.1 that resolvers accept.
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
    ],
)
def test_check_url_refuses_literal_private_addresses(url):
    with pytest.raises(UrlNotAllowed, match="is a private or reserved network address"):
        check_url(url, policy=FetchPolicy())


@pytest.mark.parametrize(
    "url, allowlist",
    [
        ("http://127.0.0.1:8000/", ("127.0.0.1",)),
        ("http://10.1.2.3/", ("10.0.0.0/8",)),
        ("http://[::1]/", ("::1/128",)),
        ("http://[::1]/", ("::1",)),
    ],
)
def test_check_url_accepts_allowlisted_private_addresses(url, allowlist):
    check_url(url, policy=FetchPolicy(allowlist=allowlist))


def test_allowlisted_address_does_not_open_its_neighbours():
    with pytest.raises(UrlNotAllowed):
        check_url("http://127.0.0.2/", policy=FetchPolicy(allowlist=("127.0.0.1",)))


def test_malformed_allowlist_network_is_a_configuration_error():
    with pytest.raises(ValueError):
        FetchPolicy(allowlist=("10.0.0.0/33",))
