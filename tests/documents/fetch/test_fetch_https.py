"""HTTPS: connected to the checked address, the certificate is still checked by name."""

import io
import shutil
import ssl
import subprocess

import pytest

from documents.processing import DocumentError
from documents.processing.fetch import FetchPolicy, fetch_url
from tests.documents.fetch.local_server import PAGE, LocalServer

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl tool")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for site.test: (certificate file, key file)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        + ["-nodes", "-days", "1", "-subj", "/CN=site.test"]
        + ["-addext", "subjectAltName=DNS:site.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = LocalServer(ssl_context=context)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def trusted(certificate, monkeypatch):
    """Make the test certificate the only one OpenSSL trusts, for this test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setenv("SSL_CERT_DIR", str(certificate[0].parent))


def fetch(url, allowlist):
    dest = io.BytesIO()
    page = fetch_url(url, dest, policy=FetchPolicy(allowlist=allowlist))
    return page, dest.getvalue()


def test_trusted_certificate_for_the_host_name_is_accepted(tls_server, dns, trusted):
    dns.answers["site.test"] = ["127.0.0.1"]

    page, body = fetch(f"https://site.test:{tls_server.port}/echo-host", ("site.test",))

    assert body == f"site.test:{tls_server.port}".encode()
    assert page.final_url == f"https://site.test:{tls_server.port}/echo-host"


def test_certificate_nobody_trusts_is_refused(tls_server, dns):
    dns.answers["site.test"] = ["127.0.0.1"]

    with pytest.raises(DocumentError, match="certificate of site.test could not be verified"):
        fetch(f"https://site.test:{tls_server.port}/page", ("site.test",))


def test_certificate_for_another_name_is_refused(tls_server, dns, trusted):
    dns.answers["other.test"] = ["127.0.0.1"]

    with pytest.raises(DocumentError, match="certificate of other.test could not be verified"):
        fetch(f"https://other.test:{tls_server.port}/page", ("other.test",))


def test_https_to_an_address_checks_the_certificate_against_the_address(tls_server, trusted):
    with pytest.raises(DocumentError, match="certificate of 127.0.0.1 could not be verified"):
        fetch(tls_server.url("/page"), ("127.0.0.1",))


def test_page_body_arrives_over_tls(tls_server, dns, trusted):
    dns.answers["site.test"] = ["127.0.0.1"]

    _, body = fetch(f"https://site.test:{tls_server.port}/page", ("site.test",))

    assert body == PAGE
