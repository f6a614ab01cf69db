"""How fast a fresh worker drains a backlog, next to plain Celery measured in the same run.

Queues ``--count`` tasks, then starts one worker with two pool processes (as shipped: the
Procfile's command) and times from its first finished task to its last:

    tracked  diagnostics.sleep(0) through the service: record, claim, watch, result row
    plain    a no-op task of plain Celery + django-celery-results with the same delivery
             settings (bench/plain_celery.py), its messages queued the same way
    raw      the same no-op task with results off (ignore_result): Celery alone

Issue 10's goal: tracked at least 2x plain and at least 0.5x raw. Machines are noisy:
compare the ratios.

Runs against the configured database and broker (the embedded default unless
DATABASE_URL / CELERY_BROKER_URL say otherwise), with a scratch user whose records, result
rows and queued messages are removed afterwards. The user's own TaskQuota lifts its limits,
so that fair use (per user) does not hold one user's backlog back.

    .venv/bin/python bench/drain.py [--count 1000]
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch import scratch_var_dir  # noqa: E402  (needs the path above)

scratch_var_dir()
# Production defaults, in this process and the workers it starts: with DEBUG on, Django
# wraps and keeps every query, which the workers' own figures would include.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

PLAIN_QUEUE = "bench-plain"
RAW_QUEUE = "bench-raw"
# What Celery logs (at INFO, in the pool process) for each task that returned.
SUCCESS_LINE = b"] succeeded in "


def drain(app_module: str, queue: str, done_count, *, count: int) -> float:
    """Start a worker on ``queue`` and return tasks/s from its first to its last finish.

    ``done_count`` is called with the path of the worker's log and returns how many tasks
    are done.
    """
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery), "-A", app_module, "worker", "-Q", queue, "-c", "2", "-l", "INFO"]
    with tempfile.NamedTemporaryFile(prefix="drain-worker-", suffix=".log") as log:
        worker = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            first_at = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = done_count(Path(log.name))
                now = time.monotonic()
                if done and first_at is None:
                    first_at, first_done = now, done
                if done >= count:
                    return (done - first_done) / max(now - first_at, 1e-9)
                time.sleep(0.05)
            done = done_count(Path(log.name))
            raise SystemExit(f"{app_module}: {done} of {count} done after 600 s")
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def successes_logged(log_path: Path) -> int:
    """Tasks whose success the worker logged: for tasks that store no result anywhere."""
    return log_path.read_bytes().count(SUCCESS_LINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()

    import django

    from bench.scratch import scratch_user

    with scratch_user("bench-drain", queues=("default", "long", PLAIN_QUEUE, RAW_QUEUE)) as user:
        from celery import states
        from django_celery_results.models import TaskResult

        from bench.plain_celery import plain_noop, raw_noop
        from config.celery import app
        from tasks_app.dispatch import tasks_publish_pending
        from tasks_app.models import TaskRecord, TaskStatus
        from tasks_app.services import task_submit
        from tasks_app.task_types import get_task_type

        sleep = get_task_type("diagnostics.sleep")
        for _ in range(args.count):
            task_submit(owner=user, task_type=sleep, input_data={"seconds": 0, "steps": 1})
        # Published here as the relay publishes them, before the worker starts: the drain
        # is what is measured (bench/http_submit.py measures the relay).
        while tasks_publish_pending(limit=500):
            pass
        records = TaskRecord.objects.filter(owner=user)
        tracked = drain(
            "config",
            sleep.queue,
            lambda log: records.filter(status=TaskStatus.SUCCEEDED).count(),
            count=args.count,
        )

        plain_ids = [plain_noop.apply_async(queue=PLAIN_QUEUE).id for _ in range(args.count)]
        plain_results = TaskResult.objects.filter(task_id__in=plain_ids, status=states.SUCCESS)
        try:
            plain = drain(
                "bench.plain_celery",
                PLAIN_QUEUE,
                lambda log: plain_results.count(),
                count=args.count,
            )
        finally:
            TaskResult.objects.filter(task_id__in=plain_ids).delete()

        for _ in range(args.count):
            raw_noop.apply_async(queue=RAW_QUEUE)
        raw = drain("bench.plain_celery", RAW_QUEUE, successes_logged, count=args.count)

    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(f"one fresh worker, 2 pool processes, {args.count} tasks each")
    print(f"tracked (this service):      {tracked:7.1f} tasks/s")
    print(f"plain Celery + results:      {plain:7.1f} tasks/s")
    print(f"raw Celery, results off:     {raw:7.1f} tasks/s")
    print(f"tracked / plain: {tracked / plain:.2f}x (goal >= 2)")
    print(f"tracked / raw:   {tracked / raw:.2f}x (goal >= 0.5)")


if __name__ == "__main__":
    main()
