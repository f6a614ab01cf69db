"""The schedules that ``migrate`` installs fire: a real beat sends them, a real worker runs them.

Beat runs with the database scheduler against the test database and the configured
broker (embedded or Redis); the session's worker runs what it sends. Nothing but
``migrate`` (run by pytest-django for the test database) installs the schedules here.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import current_app
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from operations.models import MaintenanceRun
from tests.integration.conftest import BASE_DIR, _test_database_url
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FIRE_SECONDS = 20
# Runs sent after the test ends are dropped by the worker instead of writing to the next
# test's rows; the teardown waits this long once beat has stopped.
TEST_EXPIRE_SECONDS = 3


class BeatProcess:
    """A `celery beat` child process with the database scheduler, its output in a log file."""

    def __init__(self, *, folder: Path, name: str = "beat"):
        self.log_path = folder / f"{name}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": _test_database_url(),
        }
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]
        command += ["-s", str(folder / f"{name}-schedule"), "--max-interval", "1"]
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_beat(transactional_db, celery_worker, tmp_path, request):
    """Start beat with ``start_beat()``; stopped by its pid before the database is flushed."""
    started: list[BeatProcess] = []

    def start(name: str = "beat") -> BeatProcess:
        started.append(BeatProcess(folder=tmp_path, name=name))
        return started[-1]

    yield start
    for beat in started:
        beat.stop()
    if started:
        time.sleep(TEST_EXPIRE_SECONDS)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for beat in started:
            print("---- beat log (tail) ----\n" + beat.log()[-4000:])
        print("---- worker log (tail) ----\n" + celery_worker.log()[-4000:])


def test_reconciliation_installed_by_migrate_is_sent_by_beat_and_run_by_a_worker(start_beat):
    # Earlier tests' flushes emptied the tables migrate filled: migrate again, as a
    # deployment does (back before the schedules' migration, and forward through it).
    PeriodicTask.objects.all().delete()
    call_command("migrate", "operations", "0001", verbosity=0)
    call_command("migrate", verbosity=0)
    # As an admin would in "Periodic tasks": reconcile every second instead of every minute.
    reconcile = PeriodicTask.objects.get(name="tasks-reconcile")
    reconcile.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    reconcile.expire_seconds = TEST_EXPIRE_SECONDS
    reconcile.save()

    beat = start_beat()

    deadline = time.monotonic() + FIRE_SECONDS
    while not MaintenanceRun.objects.filter(job="tasks_reconcile", outcome="done").exists():
        assert time.monotonic() < deadline, f"no tasks_reconcile run within {FIRE_SECONDS} s"
        assert beat.process.poll() is None, "beat exited"
        time.sleep(0.2)
    assert "Sending due task tasks-reconcile (operations.reconcile_tasks)" in beat.log()
    run = MaintenanceRun.objects.filter(job="tasks_reconcile", outcome="done").first()
    assert set(run.counts) >= {"requeued", "failed", "never_sent", "lost", "overdue_retries"}
    # Only the edited schedule is due this soon: the others keep their installed timing.
    assert "Sending due task operations-" not in beat.log()


@pytest.mark.parametrize(
    ("old_name", "job"),
    [
        ("tasks_app.reconcile", "tasks_reconcile"),
        ("tasks_app.prune_dead_letters", "dead_letters_prune"),
    ],
)
def test_a_message_under_a_renamed_tasks_old_name_is_run_by_the_worker(
    transactional_db, celery_worker, old_name, job
):
    # What a beat of the previous release sends until migrate renames its rows and it reloads.
    current_app.send_task(old_name, expires=FIRE_SECONDS)

    deadline = time.monotonic() + FIRE_SECONDS
    while not MaintenanceRun.objects.filter(job=job, outcome="done").exists():
        assert time.monotonic() < deadline, f"no {job} run within {FIRE_SECONDS} s"
        time.sleep(0.2)
    assert f"unregistered task of type '{old_name}'" not in celery_worker.log()


def test_of_two_beats_one_sends_and_the_other_takes_over_when_it_dies(start_beat, monkeypatch):
    """Two beats started by mistake send each run once: only the lease's holder sends.
    Killed, it stops holding the lease within OPS_BEAT_LEASE_SECONDS, and the other sends."""
    monkeypatch.setenv("OPS_BEAT_LEASE_SECONDS", "3")  # the beats' own settings read it
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.all().delete()
    PeriodicTask.objects.create(
        name="test-once",
        task="operations.reconcile_tasks",
        interval=every_second,
        expire_seconds=TEST_EXPIRE_SECONDS,
    )
    sent = "Sending due task test-once"

    first = start_beat("first")
    wait_until(lambda: sent in first.log(), timeout=FIRE_SECONDS, what="the first beat to send")
    second = start_beat("second")
    wait_until(
        lambda: "another beat holds the lease" in second.log(),
        timeout=FIRE_SECONDS,
        what="the second beat to wait",
    )
    time.sleep(4)
    assert first.log().count(sent) >= 3
    assert sent not in second.log()

    first.process.kill()  # SIGKILL: its lease is never released, it runs out
    killed_at = time.monotonic()
    wait_until(lambda: sent in second.log(), timeout=FIRE_SECONDS, what="the second to send")
    took_over_in = time.monotonic() - killed_at
    assert took_over_in < 3 + 3, took_over_in  # the lease, and a second's wait or two
    assert "holds the lease" in second.log()
