"""bin/serve's port check: a port held by a listener is taken; one left in TIME_WAIT is free."""

import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def port_is_free(port: int) -> bool:
    command = f'source bin/_setup.sh && port_is_free "{port}"'
    return subprocess.run(["bash", "-c", command], cwd=ROOT, check=False).returncode == 0


def test_a_port_with_a_listener_is_taken():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert not port_is_free(port)


def test_a_port_whose_last_connection_is_in_time_wait_is_free():
    # What a stopped bin/serve leaves: the server side closed its connection first, so that
    # connection waits out TIME_WAIT (a minute) on the server's port after the listener went.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn's own
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()
    listener.close()
    client.recv(1)  # sees the server's FIN
    client.close()
    states = Path("/proc/net/tcp").read_text()
    assert f":{port:04X} " in states  # the TIME_WAIT entry is there

    assert port_is_free(port)
