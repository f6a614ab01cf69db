"""Fault injection: real workers, relay, beat and a broker of the test's own, which the tests kill.

Only on PostgreSQL with Redis or RabbitMQ, where the delivery promises of issue #4 apply;
elsewhere every test here is skipped. Each test gets a private broker of the configured
kind: a ``redis-server`` on a free port, or a RabbitMQ node of its own (rabbitmq.py), so
killing or restarting it touches nothing else on the machine. For the length of the test the test
process publishes to it, and the workers and beat started here consume from it, with
heartbeat and reconciliation timings of seconds instead of minutes.

Every process started here is stopped by its PID at teardown, also when the test fails.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from kombu import Connection, pools
from kombu.utils.collections import eqhash

from config.celery import app as celery_app
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import _test_database_url
from tests.integration.faults.rabbitmq import BrokerCable, RabbitMQNode, rabbitmq_missing
from tests.integration.processes import child_pids, is_alive
from tests.waiting import wait_until

BASE_DIR = Path(settings.BASE_DIR)
START_SECONDS = 60
STOP_SECONDS = 10

# Lost workers and lost messages are repaired within seconds. The visibility timeout is
# high on purpose: recovery must come from our reconciliation, not from Redis handing an
# unacknowledged message out again.
FAST_TIMINGS = {
    "TASKS_HEARTBEAT_SECONDS": "0.5",
    "TASKS_HEARTBEAT_TIMEOUT_SECONDS": "4",
    "TASKS_RECONCILE_SECONDS": "1",
    "TASKS_REDISPATCH_AFTER_SECONDS": "3",
    "CELERY_VISIBILITY_TIMEOUT": "3600",
}
HEARTBEAT_TIMEOUT = float(FAST_TIMINGS["TASKS_HEARTBEAT_TIMEOUT_SECONDS"])
RECONCILE_EVERY = float(FAST_TIMINGS["TASKS_RECONCILE_SECONDS"])
REDISPATCH_AFTER = float(FAST_TIMINGS["TASKS_REDISPATCH_AFTER_SECONDS"])

# How a Celery 5.7.0 worker dies when the Redis connection drops while it holds an
# unacknowledged message and waits for more (see test_broker_outage.py).
REDIS_RESTART_CRASH = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute"


def on_rabbitmq() -> bool:
    return settings.BROKER_KIND == "rabbitmq"


@pytest.fixture(scope="session", autouse=True)
def _postgres_and_a_server_broker_only():
    # Session scope and autouse, so the skip comes before any other fixture starts anything.
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("fault tests need PostgreSQL (set DATABASE_URL)")
    if settings.BROKER_KIND not in ("redis", "rabbitmq"):
        pytest.skip("fault tests need Redis or RabbitMQ (set CELERY_BROKER_URL)")
    if on_rabbitmq() and rabbitmq_missing():
        pytest.skip(f"fault tests on RabbitMQ start a node of their own: {rabbitmq_missing()}")


# --- Processes -----------------------------------------------------------------------------


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def sigkill(pid: int) -> None:
    _signal_quietly(pid, signal.SIGKILL)


def _signal_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _is_celery(pid: int) -> bool:
    # Guards against a pid that an unrelated process was given meanwhile.
    try:
        return b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


class ServiceProcess:
    """A process the test started (worker, beat, redis), with its output in a log file."""

    def __init__(self, name: str, command: list[str], *, env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._children_seen: set[int] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def has_exited(self) -> bool:
        return self.process.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.has_exited():
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {text!r} in its log; tail:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        if self.has_exited():
            return []
        children = child_pids(self.pid)
        self._children_seen.update(children)
        return children

    def busy_children(self) -> list[int]:
        """Pool children running a task body: they have a heartbeat thread besides their own."""
        return [pid for pid in self.children() if thread_count(pid) > 1]

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or the OOM killer would."""
        doomed = [self.pid, *self.children()]
        for pid in doomed:
            sigkill(pid)
        self.process.wait(timeout=STOP_SECONDS)
        wait_until(
            lambda: not any(is_alive(pid) for pid in doomed),
            timeout=STOP_SECONDS,
            what=f"{self.name} and its children to die",
        )

    def send_signal(self, signum: int, *, with_children: bool = False) -> None:
        """Signal the process, and with ``with_children`` its pool children too (as killpg)."""
        for pid in [self.pid, *(self.children() if with_children else [])]:
            _signal_quietly(pid, signum)

    def wait_then_kill(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the process to exit, then SIGKILL it and its pool."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for pid in [self.pid, *self._children_seen]:
            if is_alive(pid) and _is_celery(pid):
                sigkill(pid)
        self.process.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        """Shut down gently (SIGTERM), then SIGKILL whatever is left, children included."""
        if not self.has_exited():
            self.children()
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in self._children_seen:  # orphans of a parent that was killed
            if is_alive(pid) and _is_celery(pid):
                sigkill(pid)
        self._log.close()


# --- The private broker ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of the test's own, always on the same free port, never saved."""

    def __init__(self, *, log_dir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log_dir = log_dir
        self._starts = 0
        self.process: ServiceProcess | None = None

    def start(self) -> None:
        """Start an empty server, as a Redis restarted without its data would be."""
        self._starts += 1
        command = ["redis-server", "--save", "", "--appendonly", "no", "--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--daemonize", "no", "--dir", str(self._log_dir)]
        self.process = ServiceProcess(
            f"redis-{self._starts}",
            command,
            env=dict(os.environ),
            log_path=self._log_dir / f"redis-{self._starts}.log",
        )
        wait_until(self._answers, timeout=START_SECONDS, what=f"redis on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server: whatever it held is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.stop()  # closes its log
            self.process = None

    stop = kill

    def _answers(self) -> bool:
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def message_count(self, queue: str) -> int:
        """Messages waiting in ``queue``, over all its priority lists."""
        client = self.client()
        return sum(client.llen(key) for key in client.keys(f"{queue}*"))


def _publish_to(url: str) -> None:
    # The app caches the connection and producer pools it built for the URL it had then.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    assert celery_app.connection_for_write().as_uri() == Connection(url).as_uri()


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A private broker of the configured kind (a Redis, or a RabbitMQ node) that this
    test's processes, and the test itself, publish to."""
    server = RabbitMQNode(log_dir=tmp_path) if on_rabbitmq() else RedisServer(log_dir=tmp_path)
    server.start()
    # Celery prefers CELERY_BROKER_URL from the environment to its own setting: set both.
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    monkeypatch.setitem(celery_app.conf, "broker_url", server.url)
    _publish_to(server.url)
    yield server
    private = eqhash(celery_app.connection_for_write())
    for group in (pools.producers, pools.connections):
        pool = group.pop(private, None)
        if pool is not None:
            pool.force_close_all()
    monkeypatch.undo()
    _publish_to(settings.CELERY_BROKER_URL)
    server.stop()


# --- Workers and beat --------------------------------------------------------------------


class Fleet:
    """Workers and beat started by a test against its private broker and the test database."""

    def __init__(self, *, broker: RedisServer | RabbitMQNode | BrokerCable, log_dir: Path):
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []
        self.workers: list[ServiceProcess] = []  # those not killed on purpose
        self.relay: ServiceProcess | None = None
        self.replaced_after_crash = 0
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": broker.url,
            **FAST_TIMINGS,
        }

    def start_worker(
        self, name: str | None = None, *, queues: tuple[str, ...] = ("default", "long")
    ) -> ServiceProcess:
        name = name or f"fault-{uuid.uuid4().hex[:6]}"
        if self.relay is None:  # workers need the relay that publishes what is submitted
            self.start_relay()
        command = [sys.executable, "-m", "celery", "-A", "config", "worker"]
        command += ["-Q", ",".join(queues), "-c", "2", "-l", "INFO", "-n", f"{name}@%h"]
        command += ["--without-mingle", "--without-gossip"]
        worker = self._start(name, command)
        worker.wait_for_log(" ready.")
        self.workers.append(worker)
        return worker

    def start_relay(self) -> ServiceProcess:
        self.relay = self._start("relay", [sys.executable, "manage.py", "tasks_relay"])
        self.relay.wait_for_log("relay started")
        return self.relay

    def kill_worker(self, worker: ServiceProcess) -> None:
        """SIGKILL a worker's main process and its pool children together."""
        self.workers.remove(worker)
        worker.kill()

    def replace_workers_lost_to_redis_restart(self) -> None:
        """Start a new worker for each one that exited the known way, as a supervisor would.

        Any other exit fails the test: only the known crash is tolerated.
        """
        for worker in [worker for worker in self.workers if worker.has_exited()]:
            assert REDIS_RESTART_CRASH in worker.log(), (
                f"worker {worker.name} exited unexpectedly; its log:\n{worker.log()[-4000:]}"
            )
            self.workers.remove(worker)
            self.replaced_after_crash += 1
            self.start_worker(f"{worker.name}-r")

    def start_beat(self) -> ServiceProcess:
        """Install the service's schedules, reconciling every second, and start beat on them."""
        # Beat's database scheduler runs the rows that bin/serve installs the same way.
        # With --reset: the rows migrate installed (every 60 s) are still there when this is
        # the run's first test on a fresh database, and would be kept as they are.
        with override_settings(TASKS_RECONCILE_SECONDS=RECONCILE_EVERY):
            call_command("install_schedules", reset=True, verbosity=0)
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]
        command += ["-s", str(self.log_dir / "beat-schedule"), "--max-interval", "1"]
        beat = self._start("beat", command)
        beat.wait_for_log("Sending due task tasks-reconcile")
        return beat

    def _start(self, name: str, command: list[str]) -> ServiceProcess:
        log_path = self.log_dir / f"{len(self.processes)}-{name}.log"
        process = ServiceProcess(name, command, env=self.env, log_path=log_path)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tails(self, chars: int = 5000) -> str:
        return "\n".join(
            f"---- {process.name} (pid {process.pid}) {process.log_path}, tail ----\n"
            + process.log()[-chars:]
            for process in self.processes
        )


@pytest.fixture
def fleet(transactional_db, broker, tmp_path, request):
    """Start workers and beat with ``fleet.start_worker()`` / ``fleet.start_beat()``.

    They are stopped before the test database is flushed; a failed test prints their logs.
    """
    fleet = Fleet(broker=broker, log_dir=tmp_path)
    yield fleet
    fleet.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fleet.log_tails())


@pytest.fixture
def owner(transactional_db):
    return UserFactory(username=f"faults-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def api(owner):
    return client_for(owner)
