"""How long POST /api/v1/tasks/ takes, through the whole Django stack and the broker.

Runs in-process against the configured database and broker (embedded default unless
DATABASE_URL / CELERY_BROKER_URL say otherwise), in a scratch var/ folder and a scratch
user. No worker or relay is needed: the figure is the submit path (validate, lock the
owner's limits, insert, commit); the relay publishes outside the request.

    .venv/bin/python bench/submit_latency.py [--count 300]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DJANGO_VAR_DIR", tempfile.mkdtemp(prefix="bench-"))
os.environ.setdefault("API_SUBMIT_RATE", "1000000/min")  # measure the path, not the limiter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from config.celery import app
    from tasks_app.models import TaskRecord

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench-submit")
    client = APIClient()
    client.force_authenticate(user)
    body = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}

    timings_ms = []
    for _ in range(args.count):
        started = time.perf_counter()
        response = client.post("/api/v1/tasks/", body, format="json", HTTP_HOST="localhost")
        timings_ms.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 202, response.content

    timings_ms.sort()
    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(f"submits: {args.count}")
    print(f"p50: {statistics.median(timings_ms):.1f} ms")
    print(f"p95: {timings_ms[int(len(timings_ms) * 0.95) - 1]:.1f} ms")
    print(f"max: {timings_ms[-1]:.1f} ms")

    TaskRecord.objects.filter(owner=user).delete()
    user.delete()
    with app.connection_for_write() as connection:
        for queue in ("default", "long"):
            connection.default_channel.queue_purge(queue)


if __name__ == "__main__":
    main()
