import ipaddress
import socket

import pytest

from tests.documents.fetch.local_server import LocalServer


@pytest.fixture(scope="package")
def running_server():
    server = LocalServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(running_server):
    running_server.reset()
    return running_server


class FakeDns:
    """Answers for made-up host names; ``lookups`` lists the names asked, in order."""

    def __init__(self):
        self.answers: dict[str, list[str] | Exception] = {}
        self.lookups: list[str] = []


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> FakeDns:
    """No test reaches a real resolver: names must be given an answer here.

    IP addresses still go to the real getaddrinfo, which answers them without a lookup
    (urllib3 calls it with the address it is told to connect to).
    """
    fake = FakeDns()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return real_getaddrinfo(host, port, *args, **kwargs)
        fake.lookups.append(host)
        answer = fake.answers.get(host, socket.gaierror(socket.EAI_NONAME, "Name not known"))
        if isinstance(answer, Exception):
            raise answer
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answer
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake
