"""A real Celery worker, against the configured broker and the test database.

The worker is a separate process started with the same settings as the tests
(tests.settings), so it sees the broker the test process publishes to, and is pointed
at the test database pytest-django created. Tests here use ``transactional_db``: the
worker only sees committed rows.
"""

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection

from tasks_app.models import TaskRecord
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.processes import child_pids

BASE_DIR = Path(settings.BASE_DIR)
WORKER_READY_SECONDS = 60


def _test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def submit_to_private_queue(*, owner, task_type: str, queue: str, task_input: dict) -> TaskRecord:
    """A task whose one message goes to ``queue``, read only by a test's own worker.

    Created without ``task_submit``, whose dispatch would reach the shared queues (and the
    session's worker). Reconciliation sends any later message to the record's ``queue`` too.
    """
    record = TaskRecord.objects.create(
        owner=owner, task_type=task_type, queue=queue, priority=5, input=task_input
    )
    current_app.send_task(task_type, args=[str(record.pk)], task_id=str(record.pk), queue=queue)
    return record


class WorkerProcess:
    """A `celery worker` child process whose log the tests can read."""

    def __init__(
        self,
        *,
        log_path: Path,
        concurrency: int = 2,
        queues: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.log_path = log_path
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            **(extra_env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--queues",
            ",".join(queues or settings.TASKS_QUEUES),
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--hostname",
            self.name,
            # Messages left by an earlier, interrupted test run must not run here.
            "--purge",
            "--without-mingle",
            "--without-gossip",
        ]
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pool_pids(self) -> set[int]:
        """The living pool processes (children of the worker's main process)."""
        return set(child_pids(self.process.pid))

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker did not start; its log:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class RelayProcess:
    """The relay (``manage.py tasks_relay``), as the Procfile runs it, on the test database."""

    command = ["manage.py", "tasks_relay"]
    ready_line = "relay started"

    def __init__(self, *, log_path: Path, extra_env: dict[str, str] | None = None):
        self.log_path = log_path
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            **(extra_env or {}),
        }
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, *self.command],
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.ready_line in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.command[-1]} did not start; its log:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class WebhooksProcess(RelayProcess):
    """The webhooks sender (``manage.py webhooks_send``), as the Procfile runs it."""

    command = ["manage.py", "webhooks_send"]
    ready_line = "webhooks sender started"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def procfile_line(process: str) -> str:
    """The Procfile's command for ``process``, as the shell reads it (``exec …``)."""
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{process}:"):
            return line.partition(":")[2].strip()
    raise LookupError(f"no {process} in the Procfile")


def procfile_command(process: str) -> list[str]:
    """The Procfile's command for ``process``, as arguments (without the shell's ``exec``)."""
    arguments = shlex.split(procfile_line(process))
    return arguments[1:] if arguments[0] == "exec" else arguments


class WebProcess:
    """The Procfile's web process (gunicorn with uvicorn workers) on the test database.

    ``extra_arguments`` go after the Procfile's own, and so win (``--workers 1``). Static
    files are collected first, as at a deploy: with DEBUG off (CI has no .env) WhiteNoise
    serves them from STATIC_ROOT only, the test run's own.
    """

    static_collected = False

    def __init__(self, *, log_path: Path, extra_env=None, extra_arguments=()):
        if not WebProcess.static_collected:
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                cwd=BASE_DIR,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
                check=True,
            )
            WebProcess.static_collected = True
        self.log_path = log_path
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [argument.replace("$PORT", str(port)) for argument in procfile_command("web")]
        assert command[0] == "gunicorn", command
        command = [sys.executable, "-m", *command, *extra_arguments]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            **(extra_env or {}),
        }
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/health/live", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the web process did not start; its log:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    """The shipped web process, shared by a module's tests."""
    web = WebProcess(log_path=tmp_path_factory.mktemp("web") / "web.log")
    web.wait_until_ready()
    yield web
    web.stop()


@pytest.fixture(scope="module", autouse=True)
def relay(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """The relay that publishes what a module's tests submit, as the Procfile runs one.

    Per module, not per session: the fault tests (faults/) and modules that set
    ``STARTS_ITS_OWN_RELAY`` run relays of their own, and a second relay on the same
    database would publish their tasks to the shared broker.
    """
    if "faults" in request.module.__name__ or getattr(request.module, "STARTS_ITS_OWN_RELAY", 0):
        yield None
        return
    relay = RelayProcess(log_path=tmp_path_factory.mktemp("relay") / "relay.log")
    relay.wait_until_ready()
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    worker = WorkerProcess(log_path=tmp_path_factory.mktemp("worker") / "worker.log")
    worker.wait_until_ready()
    yield worker
    worker.stop()


@pytest.fixture
def live(transactional_db, celery_worker, request):
    """An authenticated API client for a fresh user, with the worker running.

    On failure the worker's log tail is printed, since that is where the story is.
    """
    yield client_for(UserFactory(username=f"live-{uuid.uuid4().hex[:6]}"))
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- worker log (tail) ----\n" + celery_worker.log()[-6000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
