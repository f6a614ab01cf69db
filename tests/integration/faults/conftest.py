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
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from kombu import Connection, pools
from kombu.utils.collections import eqhash

from config.celery import app as celery_app
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.conftest import free_port
from tests.integration.faults.rabbitmq import RabbitMQNode, rabbitmq_missing
from tests.integration.fleet import Fleet
from tests.integration.processes import START_SECONDS, ServiceProcess
from tests.waiting import wait_until


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


# --- The private broker ------------------------------------------------------------------


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


@pytest.fixture
def fleet(transactional_db, broker, tmp_path, request):
    """Start workers and beat with ``fleet.start_worker()`` / ``fleet.start_beat()``.

    They are stopped before the test database is flushed; a failed test prints their logs.
    """
    fleet = Fleet(broker_url=broker.url, log_dir=tmp_path)
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
