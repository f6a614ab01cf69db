"""A RabbitMQ node of the test's own, and a cable to it that the test can cut.

The node runs as its own Erlang node (its own name, AMQP and distribution ports, and its
own epmd on a free port), keeps its data and logs in the test's folder, and enables no
plugins: killing or restarting it touches nothing of the machine's shared RabbitMQ.
Every process started here is stopped by its PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path

from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerError

from tests.integration.conftest import free_port
from tests.integration.processes import child_pids, is_alive
from tests.waiting import wait_until

# A node's start is some 5 s on an idle machine; CI machines are shared.
START_SECONDS = 60
STOP_SECONDS = 10
# Debian's /usr/sbin/rabbitmq-server runs this one as the rabbitmq user, with the shared
# node's folders; this one alone runs where the environment below says.
SERVER_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def rabbitmq_missing() -> str | None:
    """Why no private node can be started here, or None."""
    if not SERVER_SCRIPT.exists():
        return f"RabbitMQ is not installed ({SERVER_SCRIPT})"
    if shutil.which("epmd") is None:
        return "Erlang's epmd is not installed"
    return None


class RabbitMQNode:
    """A node on free ports that keeps its data across restarts, as a restarted broker does."""

    def __init__(self, *, log_dir: Path):
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self._dir = log_dir / "rabbitmq"
        self._dir.mkdir()
        (self._dir / "enabled_plugins").write_text("[].\n")
        self._epmd_port = free_port()
        self._env = {
            **os.environ,
            "HOME": str(self._dir),  # its Erlang cookie
            "ERL_EPMD_PORT": str(self._epmd_port),
            "RABBITMQ_NODENAME": f"faults-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "data"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_LOGS": "-",  # to the log file below
            "RABBITMQ_PID_FILE": str(self._dir / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self._dir / "none"),  # the defaults
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self._dir / "none.config"),
        }
        self._starts = 0
        self._epmd: subprocess.Popen | None = None
        self._server: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        """Start the node (again, with the messages it had on disk) and wait until it answers."""
        if self._epmd is None:
            # Its own epmd, in the foreground: Erlang would otherwise start a daemon that
            # outlives the test, or register with the shared node's.
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self._epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._starts += 1
        self._log = (self._dir / f"server-{self._starts}.log").open("w")
        self._server = subprocess.Popen(
            [str(SERVER_SCRIPT)],
            cwd=self._dir,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, timeout=START_SECONDS, what=f"RabbitMQ on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the node: its connections drop; what it confirmed is on disk."""
        if self._server is None:
            return
        doomed = [self._server.pid, *child_pids(self._server.pid)]  # the script, then beam
        for pid in reversed(doomed):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._server.wait(timeout=STOP_SECONDS)
        # beam's helpers (erl_child_setup, inet_gethost) leave when beam is gone.
        wait_until(
            lambda: not any(is_alive(pid) for pid in doomed),
            timeout=STOP_SECONDS,
            what="RabbitMQ to die",
        )
        self._server = None
        self._log.close()

    def stop(self) -> None:
        self.kill()
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait(timeout=STOP_SECONDS)
            self._epmd = None

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self._dir.glob("server-*.log"))
        )

    def _answers(self) -> bool:
        if self._server.poll() is not None:
            raise RuntimeError(f"RabbitMQ exited; its log:\n{self.log()[-4000:]}")
        try:
            with Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=1)
        except (OSError, BrokerError):
            return False
        return True

    def message_count(self, queue: str) -> int:
        """Messages ready in ``queue`` (not those a worker holds)."""
        with Connection(self.url, connect_timeout=2) as connection, connection.channel() as channel:
            try:
                return channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                return 0  # not declared yet


class BrokerCable:
    """A TCP relay between the service's processes and the broker, which ``cut()`` severs.

    Processes connect to ``url``; each connection is piped to the broker. A cut closes
    every connection at both ends at once, as a failed switch or a restarted load balancer
    does, and refuses new ones until ``mend()``; the broker itself stays up.
    """

    def __init__(self, *, broker_url: str, broker_port: int):
        self._broker_port = broker_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = broker_url.replace(f":{broker_port}/", f":{port}/")
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> int:
        """Sever every connection and refuse new ones; how many connections were cut."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                _close(end)
        return len(pairs)

    def mend(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._cut:
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._broker_port), timeout=2)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass  # the other end is gone, or the cable was cut
    _close(source)
    _close(target)


def _close(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (any more)
    end.close()
