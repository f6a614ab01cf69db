"""Fault injection: real workers, beat and a Redis of the test's own, which the tests kill.

Only on PostgreSQL + Redis, where the delivery promises of issue #4 apply; elsewhere every
test here is skipped. Each test gets a private ``redis-server`` on a free port, so killing
or restarting it touches nothing else on the machine. For the length of the test the test
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
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.conf import settings
from kombu import pools
from kombu.utils.collections import eqhash

from config.celery import app as celery_app
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import _test_database_url

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


@pytest.fixture(scope="session", autouse=True)
def _postgres_and_redis_only():
    # Session scope and autouse, so the skip comes before any other fixture starts anything.
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("fault tests need PostgreSQL (set DATABASE_URL)")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("fault tests need Redis (set CELERY_BROKER_URL)")


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, every=0.1):
    """Return ``condition()`` once it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(every)


# --- Processes, seen through /proc -------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def child_pids(pid: int) -> list[int]:
    """Living processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                children.append(int(entry.name))
    return sorted(children)


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ServiceProcess:
    """A process the test started (worker, beat, redis), with its output in a log file."""

    def __init__(self, name: str, command: list[str], *, env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._known_children: set[int] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {text!r} in its log; tail:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        if self.process.poll() is not None:
            return []
        children = child_pids(self.pid)
        self._known_children.update(children)
        return children

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

    def stop(self) -> None:
        """Shut down gently (SIGTERM), then SIGKILL whatever is left, children included."""
        if self.process.poll() is None:
            self.children()
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        # Children orphaned by a kill of their parent; pids only ever seen as ours.
        for pid in self._known_children:
            if is_alive(pid) and _is_our_command(pid):
                sigkill(pid)
        self._log.close()


def _is_our_command(pid: int) -> bool:
    # Guards against a pid that was reused by an unrelated process meanwhile.
    try:
        return b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


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
        if self.process is not None:
            self.process.kill()
            self.process.stop()  # closes its log
            self.process = None

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
    # The app caches its connection and producer pools, built for the URL of the day.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    assert (
        celery_app.connection_for_write().as_uri() == celery_app.connection_for_write(url).as_uri()
    )


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A private Redis that this test's processes, and the test itself, publish to."""
    server = RedisServer(log_dir=tmp_path)
    server.start()
    # Celery prefers CELERY_BROKER_URL from the environment to its own setting: set both.
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    monkeypatch.setitem(celery_app.conf, "broker_url", server.url)
    _publish_to(server.url)
    yield server
    private = celery_app.connection_for_write()
    for group in (pools.producers, pools.connections):
        pool = group.pop(eqhash(private), None)
        if pool is not None:
            pool.force_close_all()
    monkeypatch.undo()
    _publish_to(settings.CELERY_BROKER_URL)
    server.kill()


# --- Workers and beat --------------------------------------------------------------------


class Fleet:
    """Workers and beat started by a test against its private broker and the test database."""

    def __init__(self, *, broker: RedisServer, log_dir: Path):
        self.broker = broker
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": broker.url,
            **FAST_TIMINGS,
        }

    def start_worker(self, name: str | None = None, *, concurrency: int = 2) -> ServiceProcess:
        name = name or f"fault-{uuid.uuid4().hex[:6]}"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker"]
        command += ["-Q", "default,long", "-c", str(concurrency), "-l", "INFO"]
        command += ["-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
        worker = self._start(name, command)
        worker.wait_for_log(" ready.")
        return worker

    def start_beat(self) -> ServiceProcess:
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]
        command += ["-s", str(self.log_dir / "beat-schedule")]
        beat = self._start("beat", command)
        # The database scheduler has written CELERY_BEAT_SCHEDULE to its tables by now.
        beat.wait_for_log("Sending due task tasks-reconcile")
        return beat

    def _start(self, name: str, command: list[str]) -> ServiceProcess:
        process = ServiceProcess(
            name, command, env=self.env, log_path=self.log_dir / f"{name}-{len(self.processes)}.log"
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tails(self, chars: int = 5000) -> str:
        return "\n".join(
            f"---- {process.name} (pid {process.pid}) log tail ----\n{process.log()[-chars:]}"
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
