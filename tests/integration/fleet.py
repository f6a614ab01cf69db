"""Workers, relay and beat started by a test against a broker and the test database, with
heartbeat and reconciliation timings of seconds instead of minutes (the fault and multi-host
tests)."""

import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from tests.integration.conftest import _test_database_url
from tests.integration.processes import ProcessGroup, ServiceProcess

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


class Fleet(ProcessGroup):
    """Workers and beat started by a test against its private broker and the test database."""

    def __init__(self, *, broker_url: str, log_dir: Path):
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []
        self.workers: list[ServiceProcess] = []  # those not killed on purpose
        self.relay: ServiceProcess | None = None
        self.replaced_after_crash = 0
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": broker_url,
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

    def start_workers_at_once(self, queues_of_each: list[tuple[str, ...]]) -> list[ServiceProcess]:
        """A worker for each tuple of queues, started side by side; returned once all are ready."""
        if self.relay is None:
            self.start_relay()
        with ThreadPoolExecutor(max_workers=len(queues_of_each)) as pool:
            return list(pool.map(lambda queues: self.start_worker(queues=queues), queues_of_each))
