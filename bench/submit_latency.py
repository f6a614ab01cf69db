"""How long POST /api/v1/tasks/ takes, one at a time, next to two baselines of the same run.

Runs in-process (Django's test client, no HTTP server) against the configured database
and broker (embedded default unless DATABASE_URL / CELERY_BROKER_URL say otherwise), in a
scratch var/ folder and a scratch user, as shipped (DEBUG off) and authenticated as users
are (a token). No worker or relay is needed: the figure is the submit path (validate,
lock the owner's limits, insert, commit); the relay publishes outside the request. The
baselines are bench/baseline_urls.py's:

    noop     an authenticated DRF POST that writes nothing
    insert   the same, inserting one TaskRecord

Each endpoint is measured in rounds, in turn, and the user's records are deleted after
each round, so that submits do not count an ever longer list of the user's unfinished
tasks. Machines are noisy: compare the ratios.

    .venv/bin/python bench/submit_latency.py [--count 300] [--rounds 3]
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import scratch_var_dir  # noqa: E402  (needs the path above)
from bench.web import percentile  # noqa: E402

scratch_var_dir()
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("API_SUBMIT_RATE", "1000000/min")  # measure the path, not the limiter
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

ENDPOINTS = {
    "noop": ("/bench/noop/", {}),
    "insert": ("/bench/insert/", {}),
    "submit": ("/api/v1/tasks/", {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="requests per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import logging

    import django

    from bench.scratch import scratch_user

    with scratch_user("bench-submit-latency") as user:
        from rest_framework.test import APIClient

        from config.celery import app
        from tasks_app.models import TaskRecord
        from tasks_app.tokens import user_token_issue

        # The submit's log line is formatted, as in production, but not printed here.
        logging.getLogger("tasks_app").propagate = False
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {user_token_issue(user=user)[1]}")

        def measure(path: str, body: dict, count: int) -> list[float]:
            timings_ms = []
            for _ in range(count):
                started = time.perf_counter()
                response = client.post(path, body, format="json", HTTP_HOST="localhost")
                timings_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 202, response.content
            TaskRecord.objects.filter(owner=user).delete()
            return timings_ms

        for path, body in ENDPOINTS.values():  # warm-up: imports, connections, caches
            measure(path, body, 20)
        timings = {name: [] for name in ENDPOINTS}
        for _ in range(args.rounds):
            for name, (path, body) in ENDPOINTS.items():
                timings[name] += measure(path, body, args.count)

    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(f"{args.rounds} rounds of {args.count} requests per endpoint, one at a time")
    print(f"{'endpoint':<8} {'p50 ms':>7} {'p95 ms':>7}")
    p50 = {}
    for name, samples in timings.items():
        samples.sort()
        p50[name] = statistics.median(samples)
        print(f"{name:<8} {p50[name]:>7.2f} {percentile(samples, 0.95):>7.2f}")
    print(f"submit / insert p50: {p50['submit'] / p50['insert']:.2f}x")


if __name__ == "__main__":
    main()
